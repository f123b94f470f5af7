"""The dashboards and alerts against a real Prometheus scraping the real services.

The five services and the live-quality monitor run as ``shopstream serve`` processes on the
session's Kafka broker, fed by the simulated shop: its events (its customers' support messages
among them), and their outcomes on the feedback topic where the services also copy their
predictions. Support serves a tiny random model (``tests/support/tiny_support_model.py``): the
panels need its series, not a good model. Prometheus (the Debian ``prometheus``
binary) scrapes them every second with the committed scrape job and alert rules (only ``for:``
shortened). Every query of every panel of every dashboard must return data (see
``PENDING_ROWS``), and the DLQ alert must stay quiet on clean traffic and fire once bad events
arrive.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.models.repository import ModelRepository
from shared.runtime.restore import ensure_topics
from shared.schemas.feedback import DEFAULT_FEEDBACK_TOPIC
from shared.schemas.rollout import MODEL_EVENTS_TOPIC
from shared.settings import KafkaSettings
from tools.loadgen.feedback import DEFAULT_DECISIONS_TOPIC, FeedbackPublisher, shop_publisher, with_outcomes
from tools.loadgen.generator import LoadGenerator, Record, sim_rows
from tools.loadgen.support import corrupt_message
from tools.supervisor import ServiceProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

import catalog  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ("recommendation", "ad_ctr", "pricing", "fraud", "support")
WITH_OUTCOMES = ("recommendation", "ad_ctr", "pricing", "fraud")
"""The services whose predictions go to the monitor (support's messages have no outcome yet)."""
MONITOR = "monitor"
PARTITIONS = 2
RATE_WINDOW = "15s"  # $__rate_interval for a 1 s scrape interval
DLQ_ALERT = "ShopstreamDeadLetterRateHigh"
PENDING_ROWS: frozenset[str] = frozenset()
"""Rows whose metric families no service exports yet; a pending row that starts answering fails
the test, so the set cannot go stale. Empty now: every panel of every dashboard is checked,
the Live quality row included (the monitor runs here, fed by the shop's outcomes)."""


@dataclass
class Stack:
    prometheus_url: str
    prefix: str
    bootstrap: str
    services: dict[str, ServiceProcess]
    generator: LoadGenerator


def service_env(name: str, bootstrap: str, prefix: str, models: Path) -> dict[str, str]:
    """Settings (without the service's prefix) that put the service on this test's own topics."""
    cls = catalog.settings_class(name)
    env = {"KAFKA__BOOTSTRAP_SERVERS": bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
           "GROUP_ID": f"{prefix}.{name}", "CHANGELOG_TOPIC": f"{prefix}.{name}.changelog",
           "INSTANCE_ID": f"{prefix}-{name}", "RUNTIME__DEFAULT_PARTITIONS": str(PARTITIONS)}
    for field_name, info in cls.model_fields.items():
        if field_name.endswith("_topic") and isinstance(info.default, str):
            env[field_name.upper()] = f"{prefix}.{info.default}"
    if name in WITH_OUTCOMES:  # the monitor's input is the feedback topic itself
        env["FEEDBACK_TOPIC"] = f"{prefix}.{DEFAULT_FEEDBACK_TOPIC}"
    env["MODELS_DIR"] = str(models)
    return env


def stop(process: ServiceProcess) -> None:
    if process.alive():
        try:
            process.terminate(30)
        except subprocess.TimeoutExpired:
            process.kill()


def settled(process: ServiceProcess) -> bool:
    return process.ready() or not process.alive()


def input_topic(name: str, prefix: str) -> str:
    return f"{prefix}.{catalog.settings_class(name)().input_topic}"


def prometheus_files(run_dir: Path, services: dict[str, ServiceProcess]) -> Path:
    """The committed scrape job and rules, pointed at local ports, 1 s intervals, short ``for:``."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "shopstream"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{p.metrics_port}"], "labels": {"service": name}}
                             for name, p in services.items()]
    config["scrape_configs"] = [job]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "2s"
    (run_dir / "alerts.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    path = run_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_prometheus(stack: ExitStack, run_dir: Path, config: Path) -> str:
    binary = shutil.which("prometheus")
    assert binary, "the observability test needs the Debian 'prometheus' package (scripts/setup.sh)"
    port = free_port()
    log = stack.enter_context((run_dir / "prometheus.log").open("wb"))
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={run_dir / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    stack.callback(proc.wait, 30)
    stack.callback(proc.terminate)
    url = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: http_ok(f"{url}/-/ready"), 30), (run_dir / "prometheus.log").read_text()[-2000:]
    return url


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def api(url: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def shop(kafka: KafkaSettings, prefix: str, seed: int) -> tuple[Iterator[tuple[str, Record]], FeedbackPublisher]:
    """The simulated shop's events on this test's topics, and their outcomes on its feedback topic."""
    feedback = shop_publisher(kafka, "all", f"{prefix}.{DEFAULT_FEEDBACK_TOPIC}", seed,
                              decisions_topic=f"{prefix}.{DEFAULT_DECISIONS_TOPIC}")
    events = with_outcomes(sim_rows("all", seed), feedback)
    return ((f"{prefix}.{topic}", record) for topic, record in events), feedback


MODEL_DIRS = ("recommendation", "ad_ctr", "ad_ctr_text", "pricing", "fraud")
"""The committed models the stack serves (support's is a tiny one, made here)."""


def stack_models(run_dir: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A model repository with each service's committed model and a candidate beside it (the Rollout
    row needs one running in shadow), and a tiny random support model: sure enough that some
    messages are routed without a person, unsure enough that others escalate. Returns it and each
    service's (live, candidate) versions."""
    from tests.support.models import publish_copy
    from tests.support.tiny_support_model import publish_tiny_support

    models = run_dir / "models"
    committed, repository = ModelRepository(ROOT / "models"), ModelRepository(models)
    for name in MODEL_DIRS:
        for version in committed.versions(name):
            shutil.copytree(committed.path(name, version), repository.path(name, version))
    versions = {}
    for name in SERVICES:
        if name == "support":
            live = publish_tiny_support(repository, seed=3, temperature=0.5, threshold=0.2).version
            candidate = publish_tiny_support(repository, seed=4, temperature=0.5, threshold=0.2).version
        else:
            live = committed.resolve(name)
            candidate = publish_copy(repository, committed, name, live).version
        versions[name] = (live, candidate)
    return models, versions


def roll_out(kafka: KafkaSettings, prefix: str, versions: dict[str, tuple[str, str]]) -> None:
    """Before the services start: each one's live version decided on the model-events topic and its
    candidate in shadow on its config topic, as ``shopstream models promote --force`` and
    ``shopstream models rollout --shadow`` would write them."""
    from shared.schemas.rollout import RolloutPlan
    from tools.rollout.decisions import next_event, publish_event, publish_plan

    for name, (live, candidate) in versions.items():
        decided = next_event(None, name, "promoted", live, live, replaced=(), forced=True, evidence=None,
                             who="observability-test")
        publish_event(kafka, f"{prefix}.{MODEL_EVENTS_TOPIC}", decided)
        publish_plan(kafka, f"{prefix}.{catalog.settings_class(name)().config_topic}",
                     RolloutPlan(mode="shadow", candidate=candidate))


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("observability")
    prefix = f"obs{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    ensure_topics(kafka, {input_topic(name, prefix): (PARTITIONS, {}) for name in (*SERVICES, MONITOR)})
    models, versions = stack_models(run_dir)
    roll_out(kafka, prefix, versions)
    with ExitStack() as exits:
        services = {}
        for name in (*SERVICES, MONITOR):
            env = service_env(name, kafka_bootstrap, prefix, models)
            process = ServiceProcess(name, env, run_dir / f"{name}.log")
            exits.callback(stop, process)
            services[name] = process.start()
        for name, process in services.items():
            wait_until(functools.partial(settled, process), 240, 0.5)
            if not process.ready():
                pytest.fail(f"{name} not ready: {(run_dir / f'{name}.log').read_text()[-3000:]}")
        url = start_prometheus(exits, run_dir, prometheus_files(run_dir, services))
        records, feedback = shop(kafka, prefix, seed=11)
        corrupters = {input_topic("support", prefix): corrupt_message}  # control characters, invalid UTF-8…
        generator = LoadGenerator(kafka, records, rate=160.0, seed=11, feedback=feedback, corrupters=corrupters)
        worker = threading.Thread(target=generator.run, name="observability-producer", daemon=True)
        worker.start()
        exits.callback(worker.join, 30)
        exits.callback(generator.stop)
        yield Stack(url, prefix, kafka_bootstrap, services, generator)


def inject_bad_events(stack: Stack, fraction: float = 0.1) -> None:
    """From now on the producer corrupts this share of the events it sends (broken JSON, wrong
    types, missing fields), spread over time as a faulty upstream would."""
    stack.generator.bad_fraction = fraction


def firing(stack: Stack, alert: str) -> set[str]:
    alerts = api(stack.prometheus_url, "alerts")["alerts"]
    return {a["labels"].get("service", "") for a in alerts if a["labels"]["alertname"] == alert
            and a["state"] == "firing"}


def scored_everywhere(stack: Stack) -> bool:
    result = api(stack.prometheus_url, "query", query="sum by (service) (shopstream_events_scored_total)")["result"]
    return {r["metric"]["service"] for r in result if float(r["value"][1]) > 0} >= set(SERVICES)


def test_dlq_alert_is_quiet_on_clean_traffic_and_fires_on_bad_events(stack: Stack) -> None:
    assert wait_until(lambda: scored_everywhere(stack), 120, 1.0), "not every service scored events"
    time.sleep(5)  # a few evaluations of the rule over clean traffic
    assert firing(stack, DLQ_ALERT) == set(), "the DLQ alert fired on clean simulated traffic"
    inject_bad_events(stack)
    assert wait_until(lambda: firing(stack, DLQ_ALERT) >= set(SERVICES), 90, 1.0), firing(stack, DLQ_ALERT)


@dataclass(frozen=True)
class Query:
    board: str
    row: str
    title: str
    expr: str

    def __str__(self) -> str:
        return f"{self.board} / {self.row} / {self.title}: {self.expr}"


def dashboard_queries() -> list[Query]:
    """Every target of every panel, as Prometheus receives it from Grafana."""
    out = []
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        variable = next(v for v in board["templating"]["list"] if v["name"] == "service")
        selection = variable["query"] if variable["type"] == "constant" else ".+"
        row = ""
        for panel in board["panels"]:
            if panel["type"] == "row":
                row = panel["title"]
                continue
            for target in panel["targets"]:
                expr = catalog.substitute(target["expr"], selection, rate_interval=RATE_WINDOW)
                out.append(Query(path.stem, row, panel["title"], expr))
    return out


def without_data(stack: Stack, queries: list[Query]) -> list[Query]:
    return [q for q in queries if not api(stack.prometheus_url, "query", query=q.expr)["result"]]


def test_every_panel_query_of_every_dashboard_returns_data(stack: Stack) -> None:
    assert wait_until(lambda: scored_everywhere(stack), 120, 1.0), "not every service scored events"
    inject_bad_events(stack)  # the DLQ panels need dead letters
    queries = dashboard_queries()
    live = [q for q in queries if q.row not in PENDING_ROWS]
    assert len(live) > 100
    last: list[Query] = []

    def all_have_data() -> bool:
        last[:] = without_data(stack, live)
        return not last

    assert wait_until(all_have_data, 90, 3.0), "panels without data:\n" + "\n".join(map(str, last))
    pending = [q for q in queries if q.row in PENDING_ROWS]
    answered = [q for q in pending if q not in without_data(stack, pending)]
    assert not answered, "the business families exist now: empty PENDING_ROWS so every panel is checked:\n" + (
        "\n".join(map(str, answered)))
