"""Where a service spends its time at saturation: py-spy samples of ``shopstream serve``.

    python -m tools.bench.profile pricing --bootstrap 127.0.0.1:9092 --events 40000 --out profile

Pre-fills a topic, starts the service, and records it with ``py-spy`` (``pip install py-spy``)
while it drains the backlog: ``<out>.txt`` (collapsed stacks; a flame graph is ``py-spy record
-o profile.svg --pid <pid>``) and
a printed table of the functions with the most inclusive and self samples.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.service import sim_records
from tools.bench.wiring import new_topic, service_env, wire
from tools.supervisor import ServiceProcess, produce

logger = logging.getLogger(__name__)


def summarise(collapsed: str, top: int = 15) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(inclusive, self) shares of samples per function from py-spy's collapsed ``raw`` output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    share = 1 / max(total, 1)
    return ([(f, c * share) for f, c in inclusive.most_common(top)],
            [(f, c * share) for f, c in own.most_common(top)])


def _short(frame: str) -> str:
    """``score (services/pricing/scorer.py:93)`` → ``score (services/pricing/scorer.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        path = path.split(marker)[-1]
    return f"{name} ({path})" if path else name


def record(pid: int, out: Path, seconds: float, fmt: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--duration",
                    str(int(seconds)), "--rate", "50", "--nonblocking", "--format", fmt, "-o", str(out)],
                   check=True, capture_output=True)


def profile_service(service: str, kafka: KafkaSettings, events: int, seconds: float, out: Path) -> str:
    source = new_topic(kafka, f"{service}-prof-in", 4)
    produce(kafka.bootstrap_servers, source, sim_records(service, events))
    wiring = wire(kafka, service, source, 4, f"{service}-prof")
    with ServiceProcess(service, service_env(kafka, wiring)) as proc:
        proc.wait_ready(180)
        assert proc.proc is not None
        record(proc.proc.pid, out.with_suffix(".txt"), seconds, "raw")
    inclusive, own = summarise(out.with_suffix(".txt").read_text())
    lines = [f"py-spy, {service} draining a backlog for {seconds:.0f} s", "", "| inclusive | function |", "|---|---|"]
    lines += [f"| {share:.0%} | `{name}` |" for name, share in inclusive]
    lines += ["", "| self | function |", "|---|---|"] + [f"| {share:.0%} | `{name}` |" for name, share in own]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("service")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=Path("profile"))
    args = parser.parse_args()
    print(profile_service(args.service, KafkaSettings(bootstrap_servers=args.bootstrap), args.events, args.seconds,
                          args.out))


if __name__ == "__main__":
    main()
