"""The simulated shop is deterministic, its events validate, and its outputs are usable as-is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.schemas import Transaction, decode
from sim import STREAMS, SimStream, World, WorldConfig, make_stream
from sim.writer import main as writer_main
from sim.writer import read_jsonl, write_jsonl

N = 1500


SMALL_CHUNKS: dict[str, dict[str, Any]] = {
    "clickstream": {"sessions_per_chunk": 300},
    "ads": {"requests_per_chunk": 300},
    "payments": {"chunk_seconds": 60.0},
    "pricing": {"n_skus": 100},
    "support": {"p_background": 0.2},  # a message every few payments, not one in sixty
}


def small_world(seed: int) -> World:
    return World.build(WorldConfig(seed=seed, n_users=2_000, n_items=800))


def stream(name: str, world: World) -> SimStream:
    """Small chunks keep the tests fast; chunk sizes are part of a stream's definition."""
    return make_stream(name, world=world, **SMALL_CHUNKS[name])


@pytest.fixture(scope="module")
def worlds() -> dict[int, World]:
    return {7: small_world(7), 8: small_world(8)}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_same_seed_same_events_different_seed_different(name: str, worlds: dict[int, World]) -> None:
    first = list(stream(name, worlds[7]).iter_dicts(N))
    again = list(stream(name, small_world(7)).iter_dicts(N))
    other = list(stream(name, worlds[8]).iter_dicts(N))
    assert first == again
    assert [e for e, _ in first] != [e for e, _ in other]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_event_validates_and_json_path_matches(name: str, worlds: dict[int, World]) -> None:
    sim = stream(name, worlds[7])
    events = [event for event, _ in sim.iter_events(N)]
    assert len(events) == N
    for raw, event in zip(sim.iter_json(N), events, strict=True):
        assert decode(sim.model, raw) == event
    ts = [e.ts_ms for e in events]  # type: ignore[attr-defined]
    assert ts == sorted(ts), "events must come out in event-time order"


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_records_are_keyed_by_the_topic_key(name: str, worlds: dict[int, World]) -> None:
    sim = stream(name, worlds[7])
    for key, value in sim.iter_records(50):
        assert json.loads(value)[sim.key_field] == key.decode()


def test_streams_do_not_depend_on_each_other(worlds: dict[int, World]) -> None:
    alone = list(stream("payments", worlds[7]).iter_dicts(200))
    list(stream("clickstream", worlds[7]).iter_dicts(500))
    assert list(stream("payments", worlds[7]).iter_dicts(200)) == alone


def test_jsonl_round_trip_gzip(tmp_path: Path, worlds: dict[int, World]) -> None:
    rows = list(stream("ads", worlds[7]).iter_dicts(300))
    path = tmp_path / "ads.jsonl.gz"
    assert write_jsonl(rows, path) == 300
    assert list(read_jsonl(path)) == rows


def test_writer_cli_writes_bare_events_for_replay(tmp_path: Path) -> None:
    out = tmp_path / "tx.jsonl"
    args = ["payments", "200", str(out), "--set", "shop=B", "--set", "chunk_seconds=30", "--no-truth"]
    assert writer_main(args) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 200
    assert decode(Transaction, lines[0]).currency


def test_unknown_stream_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown stream 'clicks'"):
        make_stream("clicks")
