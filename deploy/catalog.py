"""What a running service exposes, and what a PromQL query asks for; used by the deploy tests.

``exposed_series()`` lists every series name a service's ``/metrics`` can carry, with its label
names, from the declarations in ``shared/runtime/metrics.py`` and ``services/monitor/metrics.py``
plus the business families of ``deploy/dashboards.py``. ``references()`` pulls metric and label names out of a query.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboards  # a sibling script, not a package

from services.monitor.metrics import LiveQualityMetrics
from services.registry import load_service
from shared.runtime.metrics import RuntimeMetrics
from shared.settings import ServiceSettings

TARGET_LABELS = frozenset({"instance", "job"})
"""Labels Prometheus adds at scrape time."""
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
PROMQL_WORDS = frozenset({
    "sum", "max", "min", "avg", "count", "by", "on", "or", "and", "unless", "without", "offset", "rate",
    "increase", "delta", "deriv", "histogram_quantile", "bool", "time", "ignoring", "group_left", "group_right",
})
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "15m", "$__interval": "15s"}


def settings_class(service: str) -> type[ServiceSettings]:
    """The service's own settings class (``SETTINGS_CLASS`` of its module)."""
    return load_service(service).settings_class


def env_prefix(cls: type[ServiceSettings]) -> str:
    return str(cls.model_config.get("env_prefix", "")).upper()


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    labels: frozenset[str]


def declared_families() -> dict[str, Family]:
    """The runtime's and the monitor's families (from throwaway instances) plus the business ones."""
    runtime = RuntimeMetrics("catalog")
    declared = [*vars(runtime).values(), *vars(runtime.rollout).values(),
                *vars(LiveQualityMetrics(CollectorRegistry())).values()]
    families = {
        m._name: Family(m._name, str(m._type), frozenset(m._labelnames))
        for m in declared if isinstance(m, MetricWrapperBase)
    }
    for name, (kind, labels) in dashboards.BUSINESS_METRICS.items():
        families.setdefault(name, Family(name, kind, frozenset(labels)))
    return families


def exposed_series() -> dict[str, frozenset[str]]:
    """Series name as scraped → label names (``le`` on buckets, target labels on all)."""
    series = {"up": TARGET_LABELS | {"service"}}
    for family in declared_families().values():
        for suffix in SUFFIXES[family.kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = family.labels | TARGET_LABELS | extra
    return series


def substitute(expr: str, service: str = ".+", rate_interval: str = "1m") -> str:
    """A Grafana query as Prometheus receives it."""
    for variable, value in {**GRAFANA_VARIABLES, "$__rate_interval": rate_interval}.items():
        expr = expr.replace(variable, value)
    return expr.replace("$service", service)


@dataclass(frozen=True)
class References:
    metrics: frozenset[str]
    grouping: frozenset[str]
    matchers: frozenset[str]


def references(expr: str) -> References:
    """Metric names, grouping labels (by/on/without) and matcher labels used in ``expr``."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    grouping = {label.strip() for group in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", expr)
                for label in group.split(",") if label.strip()}
    matchers = {label for body in re.findall(r"\{([^}]*)\}", expr)
                for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body)}
    bare = re.sub(r"\b(?:by|on|without|ignoring)\s*\([^)]*\)|\{[^}]*\}|\[[^\]]*\]", " ", expr)
    names = {w for w in re.findall(r"\b[a-zA-Z_:][\w:]*\b", bare) if w not in PROMQL_WORDS}
    return References(frozenset(names), frozenset(grouping), frozenset(matchers))


def unknown_names(expr: str) -> list[str]:
    """Problems with ``expr`` against :func:`exposed_series`: unknown metrics or labels."""
    series = exposed_series()
    refs = references(expr)
    problems = [f"unknown metric {m}" for m in sorted(refs.metrics) if m not in series]
    labels = frozenset().union(*(series.get(m, frozenset()) for m in refs.metrics))
    problems += [f"unknown label {lb}" for lb in sorted((refs.grouping | refs.matchers) - labels)]
    return problems


def promtool_check(exprs: Iterable[str]) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` over the expressions as recording rules: a PromQL syntax check."""
    rules = [{"record": f"shopstream_check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exprs.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}), encoding="utf-8")
        return subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                              timeout=60, check=False)
