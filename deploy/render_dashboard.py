"""Draw a Grafana dashboard JSON to a PNG from a live Prometheus, without Grafana.

    python deploy/render_dashboard.py --prometheus http://127.0.0.1:9090 \\
        --dashboard deploy/grafana/dashboards/shopstream-pricing.json --out pricing.png

Panels keep their grid positions; time series are drawn as lines, stats as numbers, tables as
text and bucket distributions as bars. It is a preview of what the queries return, not a
replacement for Grafana's styling.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog import substitute

logger = logging.getLogger(__name__)
ROW_UNITS = 0.32  # height of one grid unit, inches


def fetch(url: str, path: str, **params: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=30) as resp:
        body = json.loads(resp.read())
    return list(body["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    template = re.sub(r"\{\{\w+\}\}", "", template).strip()
    return template or ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")


def draw_timeseries(ax: Any, url: str, panel: dict[str, Any], exprs: list[tuple[str, str]], span_s: int) -> None:
    end = time.time()
    for expr, template in exprs:
        for series in fetch(url, "query_range", query=expr, start=str(end - span_s), end=str(end), step="5"):
            points = [(float(t) - end, float(v)) for t, v in series["values"]]
            ax.plot([p[0] / 60 for p in points], [p[1] for p in points], label=legend(template, series["metric"]))
    ax.set_xlabel("minutes", fontsize=6)
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    ax.set_ylabel(unit, fontsize=6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=5, loc="upper left")


def draw_instant(ax: Any, url: str, panel: dict[str, Any], exprs: list[tuple[str, str]]) -> None:
    ax.axis("off")
    results = [(template, s) for expr, template in exprs for s in fetch(url, "query", query=expr)]
    if panel["type"] == "bargauge":
        buckets = sorted(((float(s["metric"]["le"]), float(s["value"][1])) for _, s in results))
        counts = [b[1] - (buckets[i - 1][1] if i else 0.0) for i, b in enumerate(buckets)]
        ax.axis("on")
        ax.bar(range(len(counts)), counts)
        ax.set_xticks(range(len(counts)), [f"{b[0]:g}" for b in buckets], fontsize=5, rotation=60)
        return
    if panel["type"] == "table":
        rows = [", ".join(f"{k}={v}" for k, v in s["metric"].items() if k not in ("__name__", "instance"))
                for _, s in results]
        ax.text(0, 1, "\n".join(rows) or "no data", fontsize=6, va="top", family="monospace", wrap=True)
        return
    lines = [f"{legend(t, s['metric'])}: {float(s['value'][1]):.4g}" for t, s in results]
    ax.text(0.5, 0.5, "\n".join(lines) or "no data", fontsize=9, ha="center", va="center")


def render(url: str, dashboard: dict[str, Any], service: str, out: Path, span_s: int) -> None:
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(16, height * ROW_UNITS))
    fig.suptitle(dashboard["title"], fontsize=12)
    for panel in panels:
        g = panel["gridPos"]
        box = (g["x"] / 24 + 0.035, 1 - (g["y"] + g["h"]) / height + 0.01, g["w"] / 24 - 0.045,
               g["h"] / height - 0.035)
        if panel["type"] == "row":
            fig.text(0.005, 1 - (g["y"] + 0.5) / height, panel["title"], fontsize=9, weight="bold")
            continue
        ax = fig.add_axes(box)
        ax.set_title(panel["title"], fontsize=8)
        ax.tick_params(labelsize=6)
        exprs = [(substitute(t["expr"], service, rate_interval="30s"), t["legendFormat"]) for t in panel["targets"]]
        if panel["type"] == "timeseries":
            draw_timeseries(ax, url, panel, exprs, span_s)
        else:
            draw_instant(ax, url, panel, exprs)
    fig.savefig(out, dpi=90)
    logger.info("wrote %s", out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--dashboard", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--service", default=".+", help="value of $service (overview: a regex)")
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args(argv)
    board = json.loads(args.dashboard.read_text(encoding="utf-8"))
    variable = next(v for v in board["templating"]["list"] if v["name"] == "service")
    service = variable["query"] if variable["type"] == "constant" else args.service
    render(args.prometheus, board, service, args.out, args.minutes * 60)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
