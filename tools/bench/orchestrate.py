"""The suites behind ``shopstream bench``: what runs, in which order, on one broker."""

from __future__ import annotations

import argparse
import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from shared.settings import KafkaSettings
from tools.bench.model_limit import measure_model_limits, model_variants
from tools.bench.report import format_model, format_runtime, format_service, format_suite, format_summary
from tools.bench.runtime import run_runtime_bench
from tools.bench.service import ServiceBenchConfig, ServiceReport, bench_service
from tools.bench.session import kafka_for, services_with_models
from tools.bench.suites import bench_delivery, bench_scaling

logger = logging.getLogger(__name__)

SCALING_SERVICE = "fraud"
DELIVERY_SERVICES = ("echo",)


class Sink(Protocol):
    def add(self, text: str) -> None: ...


def _kafka(args: argparse.Namespace) -> AbstractContextManager[KafkaSettings]:
    return kafka_for(args)


def _services(args: argparse.Namespace) -> list[str]:
    return [args.target] if args.target else services_with_models()


def _config(args: argparse.Namespace, service: str) -> ServiceBenchConfig:
    peer = args.peer_python if args.peer_python and Path(args.peer_python).exists() else None
    return ServiceBenchConfig(events=args.events, naive_events=args.naive_events,
                              peer_events=args.peer_events or args.events, partitions=args.partitions,
                              repeats=args.repeats,
                              latency_seconds=args.latency_seconds, peer_python=str(peer) if peer else None,
                              variants=model_variants(service, args.variants), records=args.records)


def suite_model(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    models = [m for s in _services(args)
              for m in measure_model_limits(s, repeats=args.repeats, variants=model_variants(s, args.variants))]
    for model in models:
        out.add(format_model(model))
    if args.plots:
        from tools.bench.plots import plot_model_limits

        plot_model_limits(models, args.plots / "bench-model-limit.png")
    return 0


def _one_service(service: str, args: argparse.Namespace, kafka: KafkaSettings, out: Sink,
                 log_dir: Path) -> ServiceReport:
    report = bench_service(service, kafka, _config(args, service), log_dir)
    out.add(format_service(report))
    for model in report.models:
        out.add(format_model(model))
    if args.plots and report.latency:
        from tools.bench.plots import plot_latency

        plot_latency(service, report.latency, args.plots / f"bench-latency-{service}.png")
    return report


def suite_service(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    if not args.target:
        raise SystemExit("shopstream bench service needs a service name, e.g. `shopstream bench service fraud`")
    with _kafka(args) as kafka:
        report = _one_service(args.target, args, kafka, out, log_dir)
    out.add(format_summary([report]))
    return 0


def suite_shadow(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    """One service with and without a shadow candidate (``shopstream bench shadow SVC``)."""
    from tools.bench.report import format_shadow
    from tools.bench.shadow import SHADOW, SHADOW_LEVELS, ShadowBenchConfig, bench_shadow

    if not args.target:
        raise SystemExit("the shadow benchmark needs a service name, e.g. `shopstream bench shadow fraud`")
    levels = getattr(args, "levels", None)
    config = ShadowBenchConfig(events=args.events, partitions=args.partitions, repeats=args.repeats,
                               latency_seconds=args.latency_seconds,
                               levels=tuple(float(x) for x in levels.split(",")) if levels else SHADOW_LEVELS)
    with _kafka(args) as kafka:
        report = bench_shadow(args.target, kafka, config, log_dir)
    out.add(format_shadow(report))
    return 0 if report.runs.get(SHADOW) else 1


def suite_runtime(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    with _kafka(args) as kafka:
        report = run_runtime_bench(kafka, args.events * 5, args.partitions, args.repeats, args.naive_events, log_dir)
    out.add(format_runtime(report))
    return 0


def _scaling(service: str, args: argparse.Namespace, kafka: KafkaSettings, out: Sink, log_dir: Path) -> None:
    report = bench_scaling(service, kafka, args.events, max(1, args.repeats - 1), log_dir)
    out.add(format_suite(report))
    if args.plots:
        from tools.bench.plots import plot_scaling

        plot_scaling(report, args.plots / "bench-scaling.png")


def _delivery(service: str, args: argparse.Namespace, kafka: KafkaSettings, out: Sink, log_dir: Path) -> None:
    events = args.events * 5 if service == "echo" else args.events
    out.add(format_suite(bench_delivery(service, kafka, events, args.repeats, log_dir, args.partitions)))


def suite_scaling(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    with _kafka(args) as kafka:
        _scaling(args.target or SCALING_SERVICE, args, kafka, out, log_dir)
    return 0


def suite_delivery(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    with _kafka(args) as kafka:
        for service in [args.target] if args.target else DELIVERY_SERVICES:
            _delivery(service, args, kafka, out, log_dir)
    return 0


def suite_all(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    services = _services(args)
    out.add(f"services with a default model: {', '.join(services) or 'none'}")
    with _kafka(args) as kafka:
        out.add(format_runtime(run_runtime_bench(kafka, args.events * 5, args.partitions, args.repeats,
                                                 args.naive_events, log_dir)))
        reports = [_one_service(s, args, kafka, out, log_dir) for s in services]
        if reports:
            out.add(format_summary(reports))
        if args.plots and reports:
            from tools.bench.plots import plot_model_limits

            plot_model_limits([m for r in reports for m in r.models], args.plots / "bench-model-limit.png")
        _scaling(SCALING_SERVICE if SCALING_SERVICE in services else services[0], args, kafka, out, log_dir)
        for service in DELIVERY_SERVICES:
            _delivery(service, args, kafka, out, log_dir)
    return 0


def suite_gpu(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    from tools.bench.gpu import format_gpu_limits, gpu_model_limits, gpu_service_run, no_gpu_reason, provider_chains

    services = _services(args)
    why = no_gpu_reason()
    if why:  # a CPU figure must never pass for a GPU one: `bench model` / `bench service` measure the CPU
        out.add(f"No GPU here: {why}. GPU figures for {', '.join(services) or 'no service'} are pending until "
                f"this runs on a GPU host; nothing was measured.")
        return 2
    out.add(f"provider chains on this machine: {provider_chains()}")
    for service in services:
        out.add(format_gpu_limits(gpu_model_limits(service)))
    try:
        with _kafka(args) as kafka:
            for service in services:
                out.add(gpu_service_run(service, kafka, args.events, log_dir, args.partitions))
    except Exception as exc:  # e.g. no Java or Kafka jars on the GPU host
        out.add(f"service measurement skipped: {type(exc).__name__}: {exc}")
        return 1
    return 0


def suite_soak(args: argparse.Namespace, out: Sink, log_dir: Path) -> int:
    from tools.bench.soak import SoakConfig, run_soak
    from tools.bench.soak_report import analyse, format_soak, plot_soak
    from tools.broker.kafka import KafkaBroker

    config = SoakConfig(duration_s=args.duration, kill_every_s=args.kill_every, load_fraction=args.load_fraction,
                        partitions=args.partitions,
                        warmup_s=args.warmup if args.warmup is not None else min(180.0, args.duration / 6))
    services = _services(args)
    if args.bootstrap_servers:  # not ours to restart: the soak runs without the broker restart
        run = run_soak(KafkaSettings(bootstrap_servers=args.bootstrap_servers), services, config, log_dir, None)
    else:
        with KafkaBroker() as broker:
            def restart_broker() -> None:
                broker.stop()
                broker.start()

            run = run_soak(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), services, config, log_dir,
                           restart_broker)
    figures, faults = analyse(run)
    out.add(format_soak(run, figures, faults))  # before the plot: a plotting failure must not lose the figures
    if args.plots:
        out.add(f"![soak over time](img/{plot_soak(run, figures, args.plots / 'soak.png').name})")
    return 0 if all(f.lost == 0 for f in figures) else 1
