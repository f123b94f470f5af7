"""``shopstream bench``: benchmarks measured side by side in one run (see docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import platform
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from shared.settings import KafkaSettings


def register(sub: Any) -> None:
    parser = sub.add_parser("bench", help="run benchmarks (a benchmark, not a test)")
    parser.add_argument("suite", choices=["runtime"], help="runtime: echo service vs bare and naive loops")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--naive-events", type=int, default=3_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting one")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.set_defaults(handler=run)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def run(args: argparse.Namespace) -> int:
    from shared.bench.runtime_bench import format_report, run_runtime_bench

    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            from shared.testing.kafka import KafkaBroker

            bootstrap = stack.enter_context(KafkaBroker()).bootstrap_servers
        log_dir = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
        report = run_runtime_bench(KafkaSettings(bootstrap_servers=bootstrap), args.events, args.partitions,
                                   args.repeats, args.naive_events, log_dir)
    text = f"machine: {machine()}\n{format_report(report)}"
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0
