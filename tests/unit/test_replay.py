"""Replay of the real data sets (``shopstream produce beauty|ulb|ipinyou``) on tiny in-test files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.schemas.ads import AdRequest
from shared.schemas.base import decode
from shared.schemas.clickstream import ClickEvent
from shared.schemas.payments import Transaction
from tests.support.replay_data import write_tiny_data_sets
from tools.cli.main import main
from tools.loadgen.datasets import replay_records


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_tiny_data_sets(tmp_path)


def test_beauty_replays_users_in_order_as_valid_purchases(data_dir: Path) -> None:
    records = list(replay_records("beauty", data_dir))
    events = [decode(ClickEvent, value) for _, (_, value) in records]
    assert [(e.user_id, e.item_id) for e in events] == [
        ("beauty-u1", 1), ("beauty-u1", 2), ("beauty-u1", 3), ("beauty-u2", 4), ("beauty-u2", 1)]
    assert {topic for topic, _ in records} == {"clickstream.events"}
    assert [key for _, (key, _) in records][:1] == [b"beauty-u1"]
    assert all(e.event_type == "purchase" for e in events)
    assert [e.ts_ms for e in events] == sorted({e.ts_ms for e in events})  # strictly increasing


def test_ulb_replays_by_time_and_skips_zero_amounts(data_dir: Path) -> None:
    records = list(replay_records("ulb", data_dir))
    txns = [decode(Transaction, value) for _, (_, value) in records]
    assert [t.txn_id for t in txns] == ["ulb-1", "ulb-0"]  # sorted by Time; the 0-EUR check is skipped
    assert [(t.amount, t.currency) for t in txns] == [(1.0, "EUR"), (25.99, "EUR")]
    assert txns[1].ts_ms - txns[0].ts_ms == (500 - 36) * 1000
    assert {topic for topic, _ in records} == {"payments.transactions"}
    assert records[0][1][0] == b"ulb-u1"


def test_ipinyou_replays_impressions_as_single_candidate_requests(data_dir: Path) -> None:
    records = list(replay_records("ipinyou", data_dir))
    requests = [decode(AdRequest, value) for _, (_, value) in records]
    assert [r.request_id for r in requests] == ["ipy-train-1", "ipy-train-0", "ipy-train-2", "ipy-test-0"]
    assert [r.hour for r in requests] == [17, 18, 18, 0]
    assert [r.device for r in requests] == ["desktop", "mobile", "other", "mobile"]
    assert requests[0].user_id == "ip-other" and requests[1].user_id == "ip-60.22.69"
    assert requests[0].site_or_app == "6e9c0e0b" and requests[1].site_or_app == "app"
    assert requests[1].candidates[0]["ad_id"] == "ipy-adv2997-cr11908"
    assert [r.candidates[0]["bid"] for r in requests] == [0.305, 0.055, 1.5, 0.005]
    assert [r.ts_ms for r in requests] == sorted(r.ts_ms for r in requests)
    assert requests[1].ts_ms < requests[2].ts_ms  # two impressions in one hour are spread over it
    assert {topic for topic, _ in records} == {"ads.impressions"}


def test_missing_files_are_a_config_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"test\.csv\.gz"):
        replay_records("ipinyou", tmp_path)


def test_produce_replay_without_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce", "ulb", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "creditcard_sample.csv.gz" in err and "--data-dir" in err


def test_replayed_values_are_compact_json_without_nulls(data_dir: Path) -> None:
    _, (_, value) = next(replay_records("beauty", data_dir))
    assert b" " not in value and "query" not in json.loads(value)
