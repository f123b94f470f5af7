"""The soak benchmark's plan and its judgement of what it recorded (no broker: synthetic runs)."""

from __future__ import annotations

import argparse
import math

import pytest

from tools.bench.soak import Fault, FaultRun, SoakConfig, SoakRun, plan_faults
from tools.bench.soak_report import analyse, format_soak
from tools.bench.soak_watch import InstanceSample, LagSample, ServiceOutputs
from tools.cli.bench import seconds

SERVICES = ["recommendation", "ad_ctr", "pricing", "fraud"]
START_MS = 1_000_000_000_000  # a multiple of the window, so window starts fall on whole seconds


def test_the_plan_kills_each_service_in_turn_and_puts_the_other_faults_between_kills() -> None:
    plan = plan_faults(SERVICES, 1800, 300)
    kills = [(f.at, f.service) for f in plan if f.kind == "kill"]
    assert kills == [(300, "recommendation"), (600, "ad_ctr"), (900, "pricing"), (1200, "fraud"),
                     (1500, "recommendation")]
    others = {f.kind: (f.at, f.service) for f in plan if f.kind != "kill"}
    assert others == {"broker-restart": (750, None), "instance-added": (1050, "fraud"),
                      "instance-removed": (1350, "fraud")}
    assert [f.at for f in plan] == sorted(f.at for f in plan)
    assert "broker-restart" not in {f.kind for f in plan_faults(SERVICES, 1800, 300, broker_restart=False)}


def test_outputs_count_lost_and_twice_scored_offsets_from_lineage() -> None:
    out = ServiceOutputs()
    for offset in (0, 1, 1, 3, 70_000):
        out.mark(0, offset)
    assert out.lost_and_duplicated(0, 0, 4) == (1, 1)  # 2 lost, 1 twice
    assert out.lost_and_duplicated(0, 0, 70_002) == (70_002 - 4, 1)  # past what was seen counts as lost
    assert out.lost_and_duplicated(1, 5, 8) == (3, 0)  # a partition never seen


@pytest.mark.parametrize(("text", "expected"), [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("24h", 86400.0)])
def test_durations_read_with_units(text: str, expected: float) -> None:
    assert seconds(text) == expected


def test_a_duration_without_a_number_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        seconds("m")


def _run(spike_s: float, rss_end: float, lost_offset: int | None = None) -> SoakRun:
    """One service for 10 minutes at 100 events per 5-second window with 10 ms latency, 500 ms
    for ``spike_s`` after a kill at 300 s; RSS from 100 MiB to ``rss_end`` over the life."""
    config = SoakConfig(duration_s=600, kill_every_s=300, warmup_s=60)
    run = SoakRun(config, ["fraud"], {"fraud": 1000.0}, started_epoch_ms=START_MS, load_seconds=600)
    out = ServiceOutputs()
    offset = 0
    for window in range(120):
        start_s = window * 5
        late = 300 <= start_s < 300 + spike_s
        for _ in range(100):
            out.latencies[START_MS // 5000 + window].append(500.0 if late else 10.0)
            if offset != lost_offset:
                out.mark(0, offset)
            offset += 1
        out.scored[START_MS // 5000 + window] = 100
    run.outputs = {"fraud": out}
    run.inputs = {"fraud": {0: (0, offset)}}
    run.sent = {"fraud": offset}
    run.faults = [FaultRun(Fault(300, "kill", "fraud"), 300.0, 300.1, "fraud-0")]
    run.instance_samples = [InstanceSample(t, "fraud", "fraud-0", 42, 100 + (rss_end - 100) * t / 600, 1e6, 10, 0)
                            for t in range(0, 600, 5)]
    run.lag_samples = [LagSample(t, "fraud", 0) for t in range(0, 600, 5)]
    run.drained_after_s = 3.0
    return run


def test_a_fault_recovers_when_three_windows_are_back_near_the_steady_p99() -> None:
    services, faults = analyse(_run(spike_s=20, rss_end=101))
    (fault,) = faults
    steady, peak, recovered = fault.recovery["fraud"]
    assert (steady, peak, recovered) == (10.0, 500.0, 20.0)
    (fraud,) = services
    assert fraud.lost == 0 and fraud.duplicated == 0 and fraud.inputs == 12_000
    assert fraud.p99_ms == 10.0  # the minute after the fault is not steady
    assert fraud.worst_window_p99_ms == 500.0
    text = format_soak(_run(spike_s=20, rss_end=101), services, faults)
    assert "✗" not in text


def test_a_slow_recovery_memory_growth_and_a_lost_event_fail_their_goals() -> None:
    run = _run(spike_s=60, rss_end=120, lost_offset=777)
    services, faults = analyse(run)
    assert faults[0].worst_recovery_s == 60.0
    (fraud,) = services
    assert fraud.lost == 1
    life = fraud.longest
    assert life is not None and not math.isnan(life.growth) and life.growth > 0.05
    text = format_soak(run, services, faults)
    assert "RSS growth after warm-up < 5 % ✗" in text
    assert "nothing lost ✗ (1 lost)" in text
    assert "| ✗ |" in text  # the fault's recovery column
