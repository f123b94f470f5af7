"""Write the generated deployment files; ``--check`` fails when a committed file differs.

    python deploy/generate.py           # rewrite dashboards and the PrometheusRule
    python deploy/generate.py --check   # exit 1 if any generated file is stale

Generated: ``deploy/grafana/dashboards/shopstream-*.json`` (from ``deploy/dashboards.py``) and
``k8s/base/prometheusrule.yaml`` (the groups of ``deploy/prometheus/alerts.yml``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboards as d  # a sibling script, not a package

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = ROOT / "k8s" / "base" / "prometheusrule.yaml"
ROW_HEIGHT, PANEL_HEIGHT = 1, 8


def target(ref: int, expr: str, legend: str, panel: d.Panel) -> d.Json:
    return {
        "refId": chr(ord("A") + ref), "datasource": d.DATASOURCE, "expr": expr, "legendFormat": legend,
        "instant": panel.instant, "range": not panel.instant, "format": panel.fmt,
    }


def panel_json(panel: d.Panel, pid: int, x: int, y: int) -> d.Json:
    out: d.Json = {
        "id": pid, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": d.DATASOURCE, "gridPos": {"x": x, "y": y, "w": panel.width, "h": PANEL_HEIGHT},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": panel.options or {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                     "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [target(i, expr, legend, panel) for i, (expr, legend) in enumerate(panel.queries)],
    }
    if panel.transformations is not None:
        out["transformations"] = list(panel.transformations)
    elif panel.kind == "table":
        out["transformations"] = [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True}}}]
    return out


def layout(rows: list[tuple[str, list[d.Panel]]]) -> list[d.Json]:
    """Rows of panels packed left to right on Grafana's 24-column grid."""
    panels: list[d.Json] = []
    y, pid = 0, 1
    for title, row in rows:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": ROW_HEIGHT}})
        pid, y, x = pid + 1, y + ROW_HEIGHT, 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + PANEL_HEIGHT
            panels.append(panel_json(panel, pid, x, y))
            pid, x = pid + 1, x + panel.width
        y += PANEL_HEIGHT
    return panels


def variables(service: str | None) -> list[d.Json]:
    datasource = {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                  "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0}
    if service is None:
        svc: d.Json = {"name": "service", "label": "Service", "type": "query", "datasource": d.DATASOURCE,
                       "query": {"query": "label_values(shopstream_ready, service)", "refId": "service"},
                       "definition": "label_values(shopstream_ready, service)", "refresh": 2,
                       "multi": True, "includeAll": True, "allValue": ".+",
                       "current": {"text": "All", "value": "$__all"}, "hide": 0, "sort": 1}
    else:
        svc = {"name": "service", "type": "constant", "query": service, "hide": 2,
               "current": {"text": service, "value": service}}
    return [datasource, svc]


def dashboard(service: str | None) -> d.Json:
    name = "overview" if service is None else service
    title = "shopstream / overview" if service is None else f"shopstream / {service}"
    return {
        "uid": f"shopstream-{name.replace('_', '-')}", "title": title, "tags": ["shopstream"],
        "editable": False, "schemaVersion": 39, "version": 1, "timezone": "browser",
        "time": {"from": "now-30m", "to": "now"}, "refresh": "10s", "graphTooltip": 1,
        "templating": {"list": variables(service)}, "annotations": {"list": []},
        "links": [{"title": "shopstream", "type": "dashboards", "tags": ["shopstream"], "asDropdown": True}],
        "panels": layout(d.sections(service)),
    }


def dashboard_files() -> dict[Path, str]:
    files = {}
    for service in (None, *d.SERVICES):
        board = dashboard(service)
        name = "overview" if service is None else service.replace("_", "-")
        files[DASHBOARD_DIR / f"shopstream-{name}.json"] = json.dumps(board, indent=2) + "\n"
    return files


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as ``|`` blocks, so the rule stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def prometheus_rule() -> str:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "shopstream", "labels": {"app.kubernetes.io/part-of": "shopstream"}},
        "spec": {"groups": groups},
    }
    header = "# Generated from deploy/prometheus/alerts.yml by deploy/generate.py; do not edit.\n"
    return header + yaml.dump(rule, Dumper=_BlockDumper, sort_keys=False, width=120)


def generated_files() -> dict[Path, str]:
    return {**dashboard_files(), PROMETHEUS_RULE: prometheus_rule()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    args = parser.parse_args(argv)
    stale = [p for p, text in generated_files().items() if not p.exists() or p.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run python deploy/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
