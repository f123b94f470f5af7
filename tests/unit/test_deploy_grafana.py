"""Grafana dashboards: generated and committed in step, valid PromQL over metrics the services
expose, the panels an operator needs on each, and provisioning that finds them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
sys.path.insert(0, str(ROOT / "deploy"))

import catalog  # noqa: E402
import dashboards  # noqa: E402
import generate  # noqa: E402

COMMON_PANELS = {
    "Throughput", "DLQ rate by reason", "End-to-end latency p50 / p99", "Batch size",
    "Inference latency p50 / p99", "Consumer lag per partition", "Model version and provider",
    "Ready replicas",
}
LIVE_PANELS = {
    "Live quality vs baseline", "Live quality now", "Outcomes joined per second", "Unmatched per second by reason",
    "Join delay p95", "Window size",
}
ROLLOUT_PANELS = {
    "Candidate and its share", "Shadow agreement with the live version", "Time a shadow adds to a batch",
    "Model decisions (last hour)", "Replicas on the latest decision",
}


def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_committed_dashboards_match_the_generator() -> None:
    expected = {p.stem for p in generate.dashboard_files()}
    assert set(boards()) == expected == {"shopstream-overview"} | {
        f"shopstream-{s.replace('_', '-')}" for s in dashboards.SERVICES}
    assert generate.main(["--check"]) == 0, "stale: run python deploy/generate.py"


@pytest.mark.parametrize("name", sorted(boards()))
def test_dashboard_has_the_operator_panels(name: str) -> None:
    board = boards()[name]
    titles = {p["title"] for p in panels(board)}
    assert titles >= COMMON_PANELS
    service = name.removeprefix("shopstream-").replace("-", "_")
    if service == "overview" or service in dashboards.STATEFUL:
        assert "State store size" in titles
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert ("Business" in rows) == (service != "overview")
    assert rows[-1] == "Rollout" and titles >= ROLLOUT_PANELS  # every model can be rolled out
    if service == "overview" or service in dashboards.MONITORED:
        assert rows[-2] == "Live quality" and titles >= LIVE_PANELS
    else:  # no outcomes, so no live quality to show (support's messages)
        assert "Live quality" not in rows


def test_live_quality_sits_beside_its_baseline_on_the_same_labels() -> None:
    board = boards()["shopstream-ad-ctr"]
    by_title = {p["title"]: p for p in panels(board)}
    for title in ("Live quality vs baseline", "Live quality now"):
        live, base = (t["expr"] for t in by_title[title]["targets"])
        assert "shopstream_live_quality{" in live and base == live.replace("shopstream_live_quality{",
                                                                             "shopstream_live_quality_baseline{")
        assert "by (service, model_version, metric)" in live
    table = by_title["Live quality now"]
    assert [t["refId"] for t in table["targets"]] == ["A", "B"]
    renames = next(t for t in table["transformations"] if t["id"] == "organize")["options"]["renameByName"]
    assert renames == {"Value #A": "live", "Value #B": "baseline"}
    assert any(t["id"] == "merge" for t in table["transformations"]), "one row per metric, live beside baseline"


@pytest.mark.parametrize("name", sorted(boards()))
def test_panels_are_laid_out_on_the_grid_without_overlap(name: str) -> None:
    board = boards()[name]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, f"{p['title']} overlaps another panel"
        cells |= area


def all_queries() -> list[tuple[str, str, str]]:
    return [(name, p["title"], t["expr"]) for name, b in boards().items() for p in panels(b) for t in p["targets"]]


def test_every_query_is_valid_promql() -> None:
    result = catalog.promtool_check(catalog.substitute(expr) for _, _, expr in all_queries())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("board", "title", "expr"), all_queries(), ids=lambda v: str(v)[:40])
def test_queries_ask_for_exposed_metrics_filtered_by_service(board: str, title: str, expr: str) -> None:
    assert catalog.unknown_names(expr) == []
    assert 'service=~"$service"' in expr, "every query follows the dashboard's service selection"


def test_business_families_do_not_contradict_the_runtime_declarations() -> None:
    runtime = {name: f for name, f in catalog.declared_families().items() if name in dashboards.BUSINESS_METRICS}
    for name, (kind, labels) in dashboards.BUSINESS_METRICS.items():
        assert (runtime[name].kind, runtime[name].labels) == (kind, frozenset(labels))
        # queue: support's routing targets, a handful set in its settings (never a customer's id)
        assert set(labels) <= {"service", "topic", "partition", "reason", "model_version", "decision", "queue"}


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = datasource["datasources"]
    assert (ds["type"], ds["uid"], ds["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "shopstream.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = dict(reversed(v.split(":")[:2]) for v in compose["volumes"])
    assert (ROOT / mounts[path]).resolve() == (GRAFANA / "dashboards").resolve()
    home = compose["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).name in {f"{n}.json" for n in boards()}
    for board in boards().values():
        variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == ds["uid"]
