"""``shopstream bench soak``: every shop service for a long time under steady load and faults.

Each service reads its own input topic, fed by a paced producer at ``load_fraction`` of the
throughput it sustains in this very rig, all services side by side with their producers on one
broker (measured first, see :func:`calibrate`: their solo saturation would overload the cores).
Meanwhile, on a fixed schedule: one service SIGKILLed every ``kill_every_s`` (in turn) and
restarted at once as an orchestrator would, the broker stopped and started again, and a second
instance of one service added and later removed (two rebalances). A small supervisor restarts
any instance that exits or fails its liveness probe on its own, and counts those restarts: they
are findings, not part of the plan. See :mod:`tools.bench.soak_watch` for what is recorded and
:mod:`tools.bench.soak_report` for how it is judged.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from shared.settings import KafkaSettings
from tools.bench.contestants import terminate_service
from tools.bench.service import sim_records
from tools.bench.soak_watch import InstanceSample, LagSample, OutputReader, Sampler, ServiceOutputs
from tools.bench.wiring import SERVICE_STREAMS, Wiring, new_topic, service_env, wire
from tools.loadgen.generator import LoadGenerator
from tools.supervisor import ServiceProcess, http_get, produce

logger = logging.getLogger(__name__)

REBALANCE_SERVICE = "fraud"
"""The service that gets a second instance for a while (stateful: its state moves with its partitions)."""


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 1800.0
    kill_every_s: float = 300.0
    load_fraction: float = 0.5
    partitions: int = 4
    sample_every_s: float = 5.0
    window_s: float = 5.0
    """Width of the latency and throughput windows."""
    warmup_s: float = 180.0
    calibration_events: int = 30_000
    drain_timeout_s: float = 300.0
    seed: int = 11


@dataclass(frozen=True)
class Fault:
    at: float
    """Planned start, seconds after the load started."""
    kind: str
    """``kill``, ``broker-restart``, ``instance-added`` or ``instance-removed``."""
    service: str | None = None
    """The service hit (``None``: all of them)."""


@dataclass
class FaultRun:
    fault: Fault
    started: float
    ended: float
    """When the fault was over from the soak's side (restart begun, broker serving again)."""
    detail: str = ""


@dataclass
class SoakRun:
    """Everything a soak recorded; :mod:`tools.bench.soak_report` turns it into figures."""

    config: SoakConfig
    services: list[str]
    saturation: dict[str, float]
    """Events/s each service sustained in the rig (:func:`calibrate`)."""
    started_epoch_ms: int = 0
    load_seconds: float = 0.0
    sent: dict[str, int] = field(default_factory=dict)
    send_failures: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    """service → input partition → (low, high) watermarks at the end."""
    outputs: dict[str, ServiceOutputs] = field(default_factory=dict)
    faults: list[FaultRun] = field(default_factory=list)
    unplanned_restarts: list[tuple[float, str, str]] = field(default_factory=list)
    """(seconds, instance, why) for every restart the plan did not ask for."""
    instance_samples: list[InstanceSample] = field(default_factory=list)
    lag_samples: list[LagSample] = field(default_factory=list)
    reader_errors: list[str] = field(default_factory=list)
    drained_after_s: float = float("nan")


def plan_faults(services: Sequence[str], duration_s: float, kill_every_s: float,
                broker_restart: bool = True) -> list[Fault]:
    """A kill every ``kill_every_s`` (services in turn), the broker restart and the two rebalances
    between kills, at fixed fractions of the run so a shorter run keeps the same shape."""
    faults = [Fault(kill_every_s * (i + 1), "kill", services[i % len(services)])
              for i in range(int(duration_s // kill_every_s)) if kill_every_s * (i + 1) < duration_s]
    rebalanced = REBALANCE_SERVICE if REBALANCE_SERVICE in services else services[-1]
    if broker_restart:
        faults.append(Fault(duration_s * 5 / 12, "broker-restart"))
    faults += [Fault(duration_s * 7 / 12, "instance-added", rebalanced),
               Fault(duration_s * 9 / 12, "instance-removed", rebalanced)]
    return sorted(faults, key=lambda f: f.at)


class Fleet:
    """The service processes of the soak, restarted like an orchestrator would restart them."""

    def __init__(self, envs: dict[str, dict[str, str]], log_dir: Path, started: float) -> None:
        self.envs = envs
        self.log_dir = log_dir
        self.started = started
        self.running: dict[str, tuple[str, ServiceProcess]] = {}
        self.unplanned: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self, service: str, index: int) -> ServiceProcess:
        name = f"{service}-{index}"
        proc = ServiceProcess(service, {**self.envs[service], "INSTANCE_ID": f"soak-{name}"},
                              self.log_dir / f"soak-{name}.log")
        with self._lock:
            self.running[name] = (service, proc.start())
        return proc

    def members(self) -> list[tuple[str, str, ServiceProcess]]:
        with self._lock:
            return [(service, name, proc) for name, (service, proc) in self.running.items()]

    def kill_and_restart(self, service: str) -> str:
        """SIGKILL the service's first instance and start it again at once (same instance id)."""
        name = f"{service}-0"
        with self._lock:
            _, proc = self.running[name]
            proc.kill()
            proc.start()
        return name

    def stop(self, name: str) -> None:
        """SIGTERM (a scale-down): drain, commit, leave."""
        with self._lock:
            _, proc = self.running.pop(name)
        terminate_service(proc)

    def supervise(self) -> Fleet:
        """Watch the instances from a thread of its own until :meth:`stop_all`."""
        threading.Thread(target=self._watch, name="soak-supervisor", daemon=True).start()
        return self

    def _watch(self) -> None:
        """Restart an instance that exited (checked every 0.5 s, as a kubelet sees a container exit
        at once) or whose liveness probe failed (``/healthz`` 503, probed every 5 s)."""
        ticks = 0
        while not self._stopped.wait(0.5):
            ticks += 1
            with self._lock:
                for name, (_, proc) in self.running.items():
                    why = ""
                    if not proc.alive():
                        why = f"exited with {proc.proc.returncode if proc.proc else '?'}"
                    elif ticks % 10 == 0 and http_get(proc.metrics_port, "/healthz")[0] == 503:
                        why = "liveness probe failed"
                        proc.kill()
                    if why:
                        logger.warning("soak: %s %s; restarting it", name, why)
                        self.unplanned.append((time.monotonic() - self.started, name, why))
                        proc.start()

    def stop_all(self) -> None:
        self._stopped.set()
        for name in list(self.running):
            self.stop(name)


def calibrate(kafka: KafkaSettings, services: Sequence[str], config: SoakConfig, log_dir: Path) -> dict[str, float]:
    """Events/s each service sustains in the soak's own rig: all of them at once, each fed by its
    paced producer, the output reader running, on one broker.

    Two steps. Pre-filled topics scored at once give a first figure without the producers (the
    broker then only serves reads); the rig is then run for a while offering 1.2 times that, so
    every service is saturated, and what each one scores is its saturation with the producers'
    and the broker's share of the cores taken (on two cores that share is large: half of the
    first figure fell behind by hundreds of events a second).
    """
    first = _prefilled_rates(kafka, services, config, log_dir)
    return _rig_rates(kafka, services, config, log_dir, {s: 1.2 * r for s, r in first.items()})


RIG_SECONDS = 30.0
RIG_SETTLE_S = 12.0
"""Outputs of the first seconds (services still joining, backlogs starting) are not counted."""


def _rig_rates(kafka: KafkaSettings, services: Sequence[str], config: SoakConfig, log_dir: Path,
               offered: dict[str, float]) -> dict[str, float]:
    wirings = {s: wire(kafka, s, new_topic(kafka, f"soak-rig-{s}-in", config.partitions), config.partitions,
                       f"soak-rig-{s}") for s in services}
    procs = [ServiceProcess(s, service_env(kafka, wirings[s]), log_dir / f"soak-calibrate-rig-{s}.log")
             for s in services]
    reader = OutputReader(kafka.bootstrap_servers,
                          {t: (s, t == w.dlq) for s, w in wirings.items() for t in w.timed_topics}, 1.0)
    generators = {s: LoadGenerator(kafka, _endless(s, wirings[s].source, config.seed + 1), rate=offered[s],
                                   duration_s=RIG_SECONDS) for s in services}
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready(180)
        reader.start()
        began = time.time()
        threads = [threading.Thread(target=g.run, name=f"soak-rig-{s}", daemon=True) for s, g in generators.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counted = range(int(began + RIG_SETTLE_S), int(began + RIG_SECONDS))
        rates = {s: sum(out.scored.get(w, 0) + out.dead_lettered.get(w, 0) for w in counted) / len(counted)
                 for s, out in reader.outputs.items()}
    finally:
        for generator in generators.values():
            generator.stop()
        for proc in procs:
            terminate_service(proc)
        reader.stop()
    logger.info("soak: saturation in the rig (offered %s): %s",
                ", ".join(f"{s} {r:,.0f}/s" for s, r in offered.items()),
                ", ".join(f"{s} {r:,.0f}/s" for s, r in rates.items()))
    return rates


def _prefilled_rates(kafka: KafkaSettings, services: Sequence[str], config: SoakConfig,
                     log_dir: Path) -> dict[str, float]:
    """Events/s of each service while all of them score pre-filled topics at once, counted in the
    window where every one of them was busy: from the last first output to the first last output,
    so no service is credited with a stretch it had the machine to itself."""
    wirings: dict[str, Wiring] = {}
    for service in services:
        source = new_topic(kafka, f"soak-cal-{service}-in", config.partitions)
        produce(kafka.bootstrap_servers, source, sim_records(service, config.calibration_events))
        wirings[service] = wire(kafka, service, source, config.partitions, f"soak-cal-{service}")
    procs = [ServiceProcess(s, service_env(kafka, wirings[s]), log_dir / f"soak-calibrate-{s}.log") for s in services]
    try:
        for proc in procs:
            proc.start()
        stamps = _append_times(kafka.bootstrap_servers, wirings, config.calibration_events)
    finally:
        for proc in procs:
            terminate_service(proc)
    begin = max(min(s) for s in stamps.values())
    end = min(max(s) for s in stamps.values())
    if end - begin < 2000:
        raise RuntimeError(f"calibration overlap only {end - begin} ms; raise calibration_events")
    rates = {service: sum(1 for t in s if begin <= t <= end) / ((end - begin) / 1000) for service, s in stamps.items()}
    logger.info("soak: saturation on pre-filled topics: %s (over %.1f s)",
                ", ".join(f"{s} {r:,.0f}/s" for s, r in rates.items()), (end - begin) / 1000)
    return rates


def _append_times(bootstrap: str, wirings: dict[str, Wiring], expected: int,
                  timeout_s: float = 600) -> dict[str, list[int]]:
    topics = {topic: service for service, w in wirings.items() for topic in w.timed_topics}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-cal-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(list(topics))
    stamps: dict[str, list[int]] = {service: [] for service in wirings}
    deadline = time.monotonic() + timeout_s
    try:
        while any(len(s) < expected for s in stamps.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"calibration outputs: { {k: len(v) for k, v in stamps.items()} } of {expected}")
            for msg in consumer.consume(5000, 0.5):
                if msg.error() is None:
                    stamps[topics[msg.topic() or ""]].append(msg.timestamp()[1])
    finally:
        consumer.close()
    return stamps


def run_soak(kafka: KafkaSettings, services: Sequence[str], config: SoakConfig, log_dir: Path,
             restart_broker: Callable[[], None] | None) -> SoakRun:
    saturation = calibrate(kafka, services, config, log_dir)
    run = SoakRun(config, list(services), saturation)
    wirings = {s: wire(kafka, s, new_topic(kafka, f"soak-{s}-in", config.partitions), config.partitions, f"soak-{s}")
               for s in services}
    envs = {s: service_env(kafka, wirings[s]) for s in services}
    fleet = Fleet(envs, log_dir, time.monotonic())
    for service in services:
        fleet.start(service, 0)
    for _, _, proc in fleet.members():
        proc.wait_ready(180)
    reader = OutputReader(kafka.bootstrap_servers,
                          {t: (s, t == w.dlq) for s, w in wirings.items() for t in w.timed_topics},
                          config.window_s).start()
    started = time.monotonic()
    fleet.started = started
    run.started_epoch_ms = int(time.time() * 1000)
    sampler = Sampler(kafka.bootstrap_servers, config.sample_every_s, fleet.members,
                      {s: (envs[s]["GROUP_ID"], wirings[s].source) for s in services}, config.partitions,
                      started).start()
    fleet.supervise()
    generators = {s: LoadGenerator(kafka, _endless(s, wirings[s].source, config.seed),
                                   rate=config.load_fraction * saturation[s], duration_s=config.duration_s)
                  for s in services}
    threads = [threading.Thread(target=g.run, name=f"soak-load-{s}", daemon=True) for s, g in generators.items()]
    for thread in threads:
        thread.start()
    try:
        for fault in plan_faults(services, config.duration_s, config.kill_every_s, restart_broker is not None):
            _sleep_until(started + fault.at)
            run.faults.append(_inflict(fault, fleet, restart_broker, started))
        for thread in threads:
            thread.join()
        run.load_seconds = time.monotonic() - started
        run.sent = {s: g.sent for s, g in generators.items()}
        run.send_failures = {s: g.failed for s, g in generators.items()}
        run.inputs = {s: _watermarks(kafka.bootstrap_servers, w.source, config.partitions) for s, w in wirings.items()}
        run.drained_after_s = _drain(reader, run.inputs, config.drain_timeout_s)
    finally:
        for generator in generators.values():
            generator.stop()
        sampler.stop()
        fleet.stop_all()
        reader.stop()
    run.outputs = reader.outputs
    run.reader_errors = reader.errors[:20]
    run.unplanned_restarts = fleet.unplanned
    run.instance_samples = sampler.instance_samples
    run.lag_samples = sampler.lag_samples
    return run


def _endless(service: str, topic: str, seed: int) -> Iterator[tuple[str, tuple[bytes, bytes]]]:
    """The service's simulated stream, for ever, bound to ``topic`` now (a generator expression
    in the caller's comprehension would read its loop variable late and send every stream to
    the last topic)."""
    from sim import iter_records

    return zip(itertools.repeat(topic), iter_records(SERVICE_STREAMS[service], None, seed=seed))


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))


def _inflict(fault: Fault, fleet: Fleet, restart_broker: Callable[[], None] | None, started: float) -> FaultRun:
    begin = time.monotonic() - started
    detail = ""
    if fault.kind == "kill":
        assert fault.service is not None
        detail = fleet.kill_and_restart(fault.service)
    elif fault.kind == "broker-restart":
        assert restart_broker is not None
        restart_broker()
    elif fault.kind == "instance-added":
        assert fault.service is not None
        fleet.start(fault.service, 1)
        detail = f"{fault.service}-1"
    elif fault.kind == "instance-removed":
        assert fault.service is not None
        fleet.stop(f"{fault.service}-1")
        detail = f"{fault.service}-1"
    end = time.monotonic() - started
    logger.info("soak: %s %s at %.0f s (took %.1f s)", fault.kind, fault.service or "", begin, end - begin)
    return FaultRun(fault, begin, end, detail)


def _watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-marks-{uuid.uuid4().hex}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
    finally:
        consumer.close()


def _drain(reader: OutputReader, inputs: dict[str, dict[int, tuple[int, int]]], timeout_s: float) -> float:
    """Seconds until every input offset has an output (NaN if some never got one in time)."""
    began = time.monotonic()

    def missing() -> int:
        return sum(reader.outputs[s].lost_and_duplicated(p, low, high)[0]
                   for s, marks in inputs.items() for p, (low, high) in marks.items())

    while time.monotonic() - began < timeout_s:
        if missing() == 0:
            return time.monotonic() - began
        time.sleep(2)
    logger.warning("soak: %d input records still without an output after %.0f s", missing(), timeout_s)
    return float("nan")
