"""``shopstream bench``: benchmarks measured side by side in one run (see docs/benchmarks.md).

    shopstream bench all --out bench.md --plots docs/img     # everything, one broker, ~20 min
    shopstream bench service fraud                             # one service vs its limits and peers
    shopstream bench model                                     # model limits only (no broker)
    shopstream bench runtime | scaling [svc] | delivery [svc] | gpu [svc]
    shopstream bench soak --duration 30m --plots docs/img   # every service for long, under faults
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.bench import orchestrate
from tools.bench.session import Output, machine
from tools.bench.wiring import REPO_ROOT

logger = logging.getLogger(__name__)

SUITES = ("runtime", "model", "service", "scaling", "delivery", "all", "gpu", "soak", "shadow")
DEFAULT_PEER_PYTHON = REPO_ROOT / ".venv-quix" / "bin" / "python"


def register(sub: Any) -> None:
    parser = sub.add_parser("bench", help="run benchmarks (a benchmark, not a test)")
    parser.add_argument("suite", choices=SUITES, help="runtime: echo vs bare/naive loops; model: ORT batch sweep; "
                        "service SVC: one service vs model/I-O limits, naive loop and Quix peer; scaling: 1/2/4 "
                        "instances; delivery: at-least-once vs exactly-once; all: every suite; gpu: CUDA/TensorRT; "
                        "soak: every service under steady load for --duration, with kills, a broker restart and "
                        "a rebalance; shadow SVC: the service with and without a shadow candidate")
    parser.add_argument("target", nargs="?", help="the service (service, scaling, delivery, gpu, shadow)")
    parser.add_argument("--events", type=int, default=20_000, help="pre-filled events per run")
    parser.add_argument("--naive-events", type=int, default=1_000)
    parser.add_argument("--peer-events", type=int, help="default: --events (the very events shopstream reads; "
                        "stateful scorers cost more once their state is warm, so a prefix would flatter the peer)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="served", help="model-limit variants: served (fp32, what the "
                        "service serves), all (fp32 and every exported variant) or a comma list, e.g. fp32,int8")
    parser.add_argument("--records", choices=("sim", "banking77"), default="sim",
                        help="service: the simulated stream, or BANKING77's test messages replayed (support)")
    parser.add_argument("--latency-seconds", type=float, default=8.0, help="per load level")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON,
                        help="interpreter with quixstreams installed (see docs/benchmarks.md)")
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting one")
    parser.add_argument("--duration", type=seconds, default=1800.0, help="soak: how long the load runs "
                        "(e.g. 30m, 90s, 24h)")
    parser.add_argument("--kill-every", type=seconds, default=300.0, help="soak: SIGKILL one service this often")
    parser.add_argument("--warmup", type=seconds, help="soak: RSS growth is judged after this (default: 3 min, "
                        "or a sixth of a shorter run)")
    parser.add_argument("--load-fraction", type=float, default=0.5,
                        help="soak: the load as a fraction of each service's saturation on the shared machine")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--plots", type=Path, help="write PNG plots into this folder")
    parser.set_defaults(handler=run)


def seconds(text: str) -> float:
    """``90``, ``90s``, ``30m`` or ``24h`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 90s, 24h)") from None


def run(args: argparse.Namespace) -> int:
    logging.getLogger("shared").setLevel(logging.WARNING)  # the services' own start-up chatter
    logging.getLogger("tools.bench").setLevel(logging.INFO)  # progress of a long run
    out = Output(args.out)
    out.add(f"machine: {machine()}")
    suite: Callable[[argparse.Namespace, Output, Path], int] = getattr(orchestrate, f"suite_{args.suite}")
    log_dir = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
    code = suite(args, out, log_dir)
    out.add(f"logs: {log_dir}; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return code
