"""The README's demo command, end to end: its own broker, all five services, the monitor, a producer
with the shop's outcomes, a summary with live quality. Support's model is committed (models/support),
so no service may be skipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.registry import SHOP_SERVICES
from tools.supervisor import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WITH_OUTCOMES = ("recommendation", "ad_ctr", "pricing", "fraud")
"""The services the shop publishes outcomes for (support's messages have none yet)."""


def _leftovers(run_dir: Path) -> list[str]:
    """Demo services (instance id ``demo-*``) or a JVM using the run dir that are still running."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes() if "serve" in cmdline else b""
        except OSError:
            continue
        if str(run_dir) in cmdline or b"INSTANCE_ID=demo-" in environ:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@pytest.mark.parametrize(("broker", "duration"), [("kafka", "60"), ("tansu", "30")])
def test_demo_scores_with_every_service_and_leaves_nothing_behind(broker: str, duration: str, tmp_path: Path) -> None:
    """Apache Kafka from the harness (the README's path), and Tansu (the no-Java fallback)."""
    run_dir = tmp_path / "demo-run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli.main", "demo", "--broker", broker, "--duration", duration, "--no-ui",
         "--rate", "200", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=400, cwd=REPO_ROOT, env=env,
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in run_dir.glob("*.log"))
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{logs}"
    skipped = set(re.findall(r"^skipping (\w+): no version of its model", result.stdout, re.M))
    assert skipped == set(), result.stdout[-2000:]
    for service in (*SHOP_SERVICES, "monitor"):
        match = re.search(rf"summary {service}: scored=(\d+) dlq=(\d+)", result.stdout)
        assert match, f"no summary line for {service}:\n{result.stdout[-2000:]}"
        assert int(match.group(1)) > 0, f"{service} scored nothing"
    # Live quality from the monitor: predictions joined with the shop's outcomes. Ad clicks come
    # within 5 s; in a minute every service has joined outcomes (payments settle after 30 s).
    live = dict(re.findall(r"^live (\w+) v\d+  (.*)  n=[\d,]+$", result.stdout, re.M))
    assert re.match(r"auc 0\.\d+ \(base 0\.\d+\)", live.get("ad_ctr", "")), f"no live ad AUC:\n{result.stdout[-3000:]}"
    if broker == "kafka":
        assert set(live) >= set(WITH_OUTCOMES), f"live quality missing:\n{result.stdout[-3000:]}"
    # support in human terms: the customer's words, the intent, its probability and queue
    said = r"^sample support: customer u\d+: '.+' → \w+\?? \(\d\.\d\d\) → \w+ queue"
    assert re.search(said, result.stdout, re.M), result.stdout[-3000:]
    assert re.search(r"^business support: queues \w+=\d+.* escalated \d+/\d+", result.stdout, re.M)
    assert _leftovers(run_dir) == [], "the demo must stop every service and the broker"
