"""Prometheus config and alert rules: promtool accepts them, their unit tests pass, and every rule
asks only for metrics and labels the services really expose."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
sys.path.insert(0, str(ROOT / "deploy"))

import catalog  # noqa: E402
import generate  # noqa: E402

REQUIRED_ALERTS = {
    "ShopstreamConsumerLagGrowing",
    "ShopstreamDeadLetterRateHigh",
    "ShopstreamLatencyP99AboveBudget",
    "ShopstreamNoThroughput",
    "ShopstreamNotReady",
    "ShopstreamModelLoadFailures",
    "ShopstreamReplicasDisagreeOnModel",
    "ShopstreamLiveQualityBelowBaseline",
    "ShopstreamLiveQualityDrop",
    "ShopstreamNoOutcomes",
    "ShopstreamSupportEscalationRateHigh",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, object]]:
    groups = yaml.safe_load((PROM / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    checked = promtool("check", "rules", str(PROM / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules())} rules found" in checked.stdout


def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(PROM / "tests" / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_required_alert_exists_and_has_a_unit_test() -> None:
    names = {str(rule["alert"]) for rule in rules()}
    assert names >= REQUIRED_ALERTS
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text(encoding="utf-8"))["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert tested == names, f"alerts without a firing test: {names - tested}"
    silent = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if not t.get("exp_alerts")}
    assert silent == names, f"alerts without a stays-silent test: {names - silent}"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: str(r["alert"]))
def test_rules_use_only_exposed_metrics_and_labels(rule: dict[str, object]) -> None:
    assert catalog.unknown_names(str(rule["expr"])) == []
    labels = rule["labels"]
    assert isinstance(labels, dict) and labels["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert isinstance(annotations, dict) and {"summary", "description", "runbook_url"} <= set(annotations)


def test_compose_prometheus_scrapes_every_scoring_service_and_the_monitor() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "shopstream")
    assert job["honor_labels"] is True  # the services' own `service` label must win
    services = {sc["labels"]["service"] for sc in job["static_configs"]}
    assert services == {"recommendation", "ad_ctr", "pricing", "fraud", "support", "monitor"}
    assert all((PROM / f).is_file() for f in config["rule_files"])


def test_kubernetes_prometheus_rule_carries_the_same_groups() -> None:
    rule = yaml.safe_load((ROOT / "k8s" / "base" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    groups = yaml.safe_load((PROM / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    assert rule["spec"]["groups"] == groups
    assert generate.main(["--check"]) == 0, "generated files are stale: run python deploy/generate.py"


HIGHER_IS_BETTER = {"auc", "pr_auc", "hit_at_10", "ndcg_at_10", "profit_vs_oracle"}
LOWER_IS_BETTER = {"log_loss", "wape"}


def test_quality_alerts_judge_measures_the_monitor_exports_with_a_baseline() -> None:
    """A renamed measure would leave the alert silent forever; ece, rates and coverage have no
    direction against their baseline (the base rate is calibrated by construction)."""
    import numpy as np

    from services.monitor.windows import MEASURES

    columns = {"ad_ctr": 3, "fraud": 4, "pricing": 6, "recommendation": 4}
    rng = np.random.default_rng(0)
    with_baseline = set()
    for service, measures in MEASURES.items():
        model, baseline = measures(rng.integers(0, 2, (64, columns[service])).astype(np.float64))
        with_baseline |= set(model) & set(baseline)
    assert with_baseline >= HIGHER_IS_BETTER | LOWER_IS_BETTER
    quality = [r for r in rules() if str(r["alert"]).startswith("ShopstreamLiveQuality")]
    assert len(quality) == 2
    for rule in quality:
        named = {frozenset(group.split("|")) for group in re.findall(r'metric=~"([^"]*)"', str(rule["expr"]))}
        assert named == {frozenset(HIGHER_IS_BETTER), frozenset(LOWER_IS_BETTER)}
        assert "shopstream_live_window >= 200" in str(rule["expr"]), "an empty window must not fire"
