"""The results section of docs/support.md, rendered from ``results.json`` (see ``report``).

Only the text between the ``support-results`` markers is replaced, so the prose around
the tables (and the sections other people own) stays as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PAPER = [
    # (row, 10-shot, 30-shot, full): Casanueva et al. 2020, Table 3, BANKING77 accuracy (%).
    # None: a figure we could not verify from a source available here; not quoted.
    ("BERT-Large, fine-tuned (paper)", None, None, 93.66),
    ("USE (paper)", None, None, None),
    ("ConveRT (paper)", None, None, None),
    ("USE+ConveRT (paper)", 85.19, None, 93.36),
]


def _pct(value: float | None) -> str:
    return "n/v" if value is None else f"{100 * value:.2f}"


def _paper(value: float | None) -> str:
    return "n/v" if value is None else f"{value:.2f}"


def accuracy_table(r: dict[str, Any]) -> list[str]:
    fs, base, srv = r.get("fewshot", {}), r.get("baselines", {}), r.get("served", {})
    full = srv.get("graphs", {}).get("fp32", {})
    rows = ["| model | 10-shot | 30-shot | full (10,003) |", "|---|---:|---:|---:|"]
    rows += [f"| {name} | {_paper(a)} | {_paper(b)} | {_paper(c)} |" for name, a, b, c in PAPER]
    rows.append(f"| **all-MiniLM-L6-v2 fine-tuned (this repo; full: the served ONNX graph, few-shot: torch)** | "
                f"{_pct(fs.get('10-shot', {}).get('accuracy'))} | {_pct(fs.get('30-shot', {}).get('accuracy'))} | "
                f"**{_pct(full.get('accuracy'))}** |")
    for key, name in (("tfidf", "TF-IDF + logistic regression"), ("minilm_lr", "frozen MiniLM embedding + LR")):
        cells = [_pct(base.get(f"{key}/{n}", {}).get("accuracy")) for n in ("10-shot", "30-shot", "full")]
        rows.append(f"| {name} (this repo) | " + " | ".join(cells) + " |")
    return rows


def detail_table(r: dict[str, Any]) -> list[str]:
    rows = ["| model | training data | accuracy | macro-F1 | ECE |", "|---|---|---:|---:|---:|"]
    srv = r.get("served", {}).get("graphs", {})
    if "fp32" in srv:
        g = srv["fp32"]
        rows.append(f"| fine-tuned MiniLM, ONNX fp32 | full | {_pct(g['accuracy'])} | {_pct(g['macro_f1'])} | "
                    f"{g['ece']:.4f} |")
    for n, g in r.get("fewshot", {}).items():
        rows.append(f"| fine-tuned MiniLM, torch ({g['epochs']} epochs, {g['rows']} messages) | {n} | "
                    f"{_pct(g['accuracy'])} | {_pct(g['macro_f1'])} | {g['ece']:.4f} |")
    for key, g in r.get("baselines", {}).items():
        name, n = key.split("/")
        label = "TF-IDF + LR" if name == "tfidf" else "frozen MiniLM + LR"
        rows.append(f"| {label} | {n} | {_pct(g['accuracy'])} | {_pct(g['macro_f1'])} | {g['ece']:.4f} |")
    return rows


def variants_table(r: dict[str, Any]) -> list[str]:
    graphs = r.get("served", {}).get("graphs", {})
    if "fp32" not in graphs:
        return []
    base = graphs["fp32"]["accuracy"]
    rows = ["| graph | size | accuracy | Δ accuracy (points) | macro-F1 | ECE |", "|---|---:|---:|---:|---:|---:|"]
    for kind, g in graphs.items():
        rows.append(f"| {kind} | {g['size_bytes'] / 1e6:.1f} MB | {_pct(g['accuracy'])} | "
                    f"{100 * (g['accuracy'] - base):+.2f} | {_pct(g['macro_f1'])} | {g['ece']:.4f} |")
    return rows


def coverage_table(r: dict[str, Any]) -> list[str]:
    srv = r.get("served", {})
    if "curve" not in srv:
        return []
    fp32 = srv["graphs"]["fp32"]
    rows = [f"Escalation threshold **{srv['threshold']:.3f}**, chosen on the validation split as the lowest "
            f"probability at which the answered messages reach {100 * srv['target']:.0f} % accuracy: it answers "
            f"{_pct(srv.get('coverage_valid'))} % of validation messages and, on test, {_pct(fp32['coverage'])} % "
            f"at {_pct(fp32['answered_accuracy'])} % accuracy (the rest escalate).", "",
            "| answered (most confident share of test) | accuracy of the answered | probability threshold |",
            "|---:|---:|---:|"]
    rows += [f"| {100 * p['coverage']:.0f} % | {_pct(p['accuracy'])} | {p['threshold']:.3f} |" for p in srv["curve"]]
    return rows


def render(r: dict[str, Any]) -> dict[str, str]:
    """The text of each marked block, by marker name."""
    results = [["Accuracy (%) on the official test split (3,080 messages); n/v: not verified, see below.", ""],
               accuracy_table(r), ["", "Macro-F1 and expected calibration error (15 equal-width bins):", ""],
               detail_table(r), ["", "### Escalation threshold: accuracy against coverage", ""], coverage_table(r)]
    return {"support-results": "\n".join(line for part in results for line in part),
            "support-variants": "\n".join(variants_table(r))}


def render_into(doc: Path, results: dict[str, Any]) -> None:
    """Replace each marked block of ``doc`` (appended if its markers are missing)."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    for name, body in render(results).items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        block = f"{start}\n{body}\n{end}"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(block.replace("\\", "\\\\"), text) if pattern.search(text) else f"{text}\n{block}\n"
    doc.write_text(text, encoding="utf-8")
