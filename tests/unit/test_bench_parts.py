"""Pure parts of the benchmarks: topic wiring, tensor tiling, latency windows, profile summaries."""

from __future__ import annotations

import numpy as np
import pytest

from tools.bench.measure import OutputTiming, percentile
from tools.bench.model_limit import tile
from tools.bench.profile import summarise
from tools.bench.scoring import RawRecord, as_records
from tools.bench.wiring import Wiring, bench_topics


def test_every_topic_a_service_writes_is_renamed_and_config_topics_are_off() -> None:
    topics = bench_topics("pricing", "bench-in", "bench-out")
    assert topics["input_topic"] == "bench-in"
    assert topics["output_topic"] == "bench-out"
    assert topics["dlq_topic"] == "bench-out.dlq"
    assert topics["forecast_topic"] == "bench-out.forecast"
    assert topics["config_topic"] == ""  # falsy: no operator config during a benchmark
    assert all(t.startswith("bench-") or t == "" for t in topics.values())


def test_wiring_env_and_timed_topics() -> None:
    wiring = Wiring("in", "out", {"input_topic": "in", "output_topic": "out", "dlq_topic": "out.dlq"})
    assert wiring.env() == {"INPUT_TOPIC": "in", "OUTPUT_TOPIC": "out", "DLQ_TOPIC": "out.dlq"}
    assert wiring.timed_topics == ["out", "out.dlq"]


def test_tile_repeats_captured_rows_on_the_batch_axis_only() -> None:
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(3, 2), "table": np.ones((5, 4), dtype=np.float32)}
    tiled = tile(feeds, 7, {"x"})
    assert tiled["x"].shape == (7, 2)
    assert tiled["x"][3].tolist() == feeds["x"][0].tolist()
    assert tiled["table"] is feeds["table"]
    assert tiled["x"].flags["C_CONTIGUOUS"]


def test_latency_window_keeps_events_of_one_load_level() -> None:
    timing = OutputTiming(4, 0, 10, [5.0, 50.0, 7.0, 70.0], [1000, 2000, 1500, 2500])
    assert timing.window(1000, 2000) == [5.0, 7.0]
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 3.0
    assert np.isnan(percentile([], 0.99))


def test_profile_summary_counts_inclusive_and_self_samples() -> None:
    collapsed = "\n".join([
        "main (app.py:1);score (scorer.py:10);run (session.py:5) 6",
        "main (app.py:1);encode (records.py:3) 4",
    ])
    inclusive, own = summarise(collapsed)
    assert dict(inclusive)["main (app.py)"] == 1.0
    assert dict(inclusive)["score (scorer.py)"] == pytest.approx(0.6)
    assert dict(own)["encode (records.py)"] == pytest.approx(0.4)


def test_raw_records_look_like_consumed_messages() -> None:
    records = as_records([(b"k1", b"{}"), (b"k2", b"[]")], topic="t", partitions=2)
    assert isinstance(records[1], RawRecord)
    assert (records[1].topic(), records[1].partition(), records[1].offset(), records[1].key()) == ("t", 1, 1, b"k2")
    assert records[0].timestamp()[1] > 0 and records[0].error() is None
