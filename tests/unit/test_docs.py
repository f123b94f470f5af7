"""The docs agree with the code: the metrics table, module and file paths, and commands that run anywhere."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.runtime.metrics import RuntimeMetrics
from tools.supervisor import REPO_ROOT

DOCS = [*sorted((REPO_ROOT / "docs").rglob("*.md")), REPO_ROOT / "README.md"]
ROOMS = ("shared", "services", "sim", "export", "tools", "tests", "deploy", "k8s", "scripts", "examples", "schemas",
         "docs", "models")
MACHINE_SPECIFIC = re.compile(r"/root/|/home/\w|/work/|\.cache/shopstream/warm|(?<![\w.-])\.venv/|^\s*cd /", re.M)
PYTHON_M = re.compile(r"(?:\bpython[\d.]*|\$\{?PY\}?|\$R)\s+-m\s+([A-Za-z_][\w.]*)")
INTERPRETER = re.compile(r'^\s*(?:export\s+)?\w+=("[^"]*"|\S+)', re.M)
"""A shell variable set to a value (``PY=...``, ``export PYTHON="$(...)/bin/python"``)."""
REPO_PATH = re.compile(rf"(?<![\w./~-])((?:{'|'.join(ROOMS)})/[\w./<>*-]*[\w>*])")


def doc_id(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def metrics_table() -> list[tuple[list[str], str, str]]:
    """(metric names, type, labels) per row of the table in docs/runtime.md's "Metrics and health"."""
    text = (REPO_ROOT / "docs" / "runtime.md").read_text()
    section = text.split("## Metrics and health", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `shopstream_") and len(cells) == 3:
            rows.append((re.findall(r"`(shopstream_\w+)`", cells[0]), cells[1], cells[2]))
    return rows


def exposed_families() -> dict[str, str]:
    """Name as Prometheus exposes it (counters with ``_total``) → type, for every RuntimeMetrics family."""
    metrics = RuntimeMetrics("docs", CollectorRegistry())
    return {f"{m.name}_total" if m.type == "counter" else m.name: m.type for m in metrics.registry.collect()}


def test_the_metrics_table_lists_exactly_the_families_runtime_metrics_registers() -> None:
    documented = {name: kind.split()[0].removesuffix("s") for names, kind, _ in metrics_table() for name in names}
    assert len(documented) >= 10, "the table was not found"
    assert documented == exposed_families()


def _kind_argument(call: ast.Call) -> ast.expr | None:
    keyword = next((k.value for k in call.keywords if k.arg == "kind"), None)
    return keyword if keyword is not None else (call.args[-1] if call.args else None)


def emitted_kinds(counter: str) -> set[str]:
    """Every literal kind passed last to ``<...>.<counter>.labels(...)`` (or ``._<counter>``) in shared/."""
    kinds: set[str] = set()
    for path in (REPO_ROOT / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "labels"
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr.lstrip("_") == counter
                    and (kind := _kind_argument(node)) is not None):
                kinds |= {c.value for c in ast.walk(kind) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return kinds


def documented_kinds(metric: str) -> set[str]:
    labels = next(labels for names, _, labels in metrics_table() if metric in names)
    return set(re.findall(r"`(\w+)`", labels))


@pytest.mark.parametrize(("metric", "counter"), [
    ("shopstream_errors_total", "errors"), ("shopstream_rebalances_total", "rebalances"),
])
def test_the_kinds_the_table_names_are_the_kinds_the_code_emits(metric: str, counter: str) -> None:
    emitted = emitted_kinds(counter)
    assert emitted, f"no {counter}.labels(...) call found in shared/: the check would pass vacuously"
    assert documented_kinds(metric) == emitted


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_no_doc_depends_on_one_machine(doc: Path) -> None:
    found = [m.group(0) for m in MACHINE_SPECIFIC.finditer(doc.read_text())]
    assert found == [], f"machine-specific paths; start from the README's setup (scripts/setup.sh) instead: {found}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_python_m_module_in_the_docs_exists(doc: Path) -> None:
    missing = sorted({m for m in PYTHON_M.findall(doc.read_text()) if importlib.util.find_spec(m) is None})
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_repository_path_in_the_docs_exists(doc: Path) -> None:
    paths = {p for p in REPO_PATH.findall(doc.read_text()) if not set("<>*") & set(p)}
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists() and not (doc.parent / p).exists())
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_a_documented_interpreter_comes_from_the_setup_script(doc: Path) -> None:
    values = [v for v in INTERPRETER.findall(doc.read_text()) if "python" in v and "scripts/setup.sh" not in v]
    assert values == []


def test_the_doc_checks_see_what_they_look_for() -> None:
    assert MACHINE_SPECIFIC.findall("R=/root/x ~/.cache/shopstream/warm/bin/python .venv/bin/python /home/me\n"
                                    "  cd /srv\n.venv-quix/bin/pip a/.venv/b") == [
        "/root/", ".cache/shopstream/warm", ".venv/", "/home/m", "  cd /", ".venv/"]
    sample = "$PY -m shared.cli.main produce\npython3.11 -m venv .venv-quix\n${PY} -m a.b\npytest -m integration\n"
    assert PYTHON_M.findall(sample) == ["shared.cli.main", "venv", "a.b"]
    assignments = 'PY=/opt/x/bin/python; y\nexport PYTHON="$(scripts/setup.sh all)/bin/python"\nPYTHONPATH=. $PY -m x\n'
    assert INTERPRETER.findall(assignments) == ["/opt/x/bin/python;", '"$(scripts/setup.sh all)/bin/python"', "."]
    assert REPO_PATH.findall("see `shared/bench/orchestrate.py`, tools/cli/main.py and https://x.org/docs/a.md") == [
        "shared/bench/orchestrate.py", "tools/cli/main.py"]
