"""Support traffic: BANKING77 replayed (``produce banking77``), the shop's own support messages
(``produce support``, and inside ``all``), and the malformed messages ``--bad-fraction`` makes."""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from shared.errors import InvalidEvent
from shared.schemas.base import decode
from shared.schemas.support import MAX_TEXT_CHARS, SupportMessage
from sim import make_stream
from sim.payments import COUNTRIES, PaymentsSim
from sim.support import TRIGGER_INTENTS, SupportDesk, phrases
from tests.support.replay_data import BANKING77_ROWS, write_tiny_banking77
from tools.cli import produce
from tools.loadgen.datasets import replay_records, replay_rows
from tools.loadgen.generator import sim_rows
from tools.loadgen.support import BANKING77_STEP_MS, corrupt_message

SUPPORT_TOPIC = "support.messages"


@pytest.fixture(scope="module")
def shop_rows() -> list[tuple[str, bytes, str, dict, dict]]:  # type: ignore[type-arg]
    """The first 30,000 events of ``all`` (about 120 support messages)."""
    return [(t, r[0], s, e, tr) for t, r, s, e, tr in itertools.islice(sim_rows("all", 7), 30_000)]  # type: ignore[misc]


def test_banking77_replays_the_test_messages_in_order_as_valid_support_messages(tmp_path: Path) -> None:
    data_dir = write_tiny_banking77(tmp_path)
    records = list(replay_records("banking77", data_dir))
    messages = [decode(SupportMessage, value) for _, (_, value) in records]
    assert [m.text for m in messages] == [text for text, _ in BANKING77_ROWS]  # commas, quotes, newlines kept
    assert {topic for topic, _ in records} == {SUPPORT_TOPIC}
    assert [key.decode() for _, (key, _) in records] == [m.customer_id for m in messages]
    assert [m.message_id for m in messages] == [f"b77-test-{i}" for i in range(4)]
    assert [b.ts_ms - a.ts_ms for a, b in itertools.pairwise(messages)] == [BANKING77_STEP_MS] * 3
    assert {m.language for m in messages} == {"en"}
    assert records == list(replay_records("banking77", data_dir))  # customers and channels: a fixed seed
    assert [truth for *_, truth in replay_rows("banking77", data_dir)] == [
        {"intent": intent} for _, intent in BANKING77_ROWS]


@pytest.mark.parametrize("seed", range(3))
def test_every_malformed_support_message_is_refused_and_every_kind_is_made(seed: int) -> None:
    good = SupportMessage(message_id="m1", customer_id="c1", channel="chat", language="en",
                          text="my card payment was declined twice", ts_ms=1_704_067_200_000)
    record = (b"c1", good.model_dump_json().encode())
    rng, reasons = random.Random(seed), collections.Counter[str]()
    for _ in range(120):
        key, value = corrupt_message(record, rng)
        assert key == b"c1"
        with pytest.raises((InvalidEvent, UnicodeDecodeError, ValueError)) as refused:
            decode(SupportMessage, value.decode("utf-8"))
        reasons[_kind(value, refused.value)] += 1
    assert set(reasons) >= {"control", "overlong", "utf8", "missing", "generic"}, reasons


def _kind(value: bytes, error: BaseException) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "utf8"
    try:
        message = json.loads(value)
    except ValueError:
        return "generic"
    if not isinstance(message, dict) or "message_id" not in message:
        return "generic"
    if "text" not in message or "customer_id" not in message:
        return "missing"
    if len(message["text"]) > MAX_TEXT_CHARS:
        return "overlong"
    return "control" if "control character" in str(error) else "generic"


def test_produce_breaks_support_messages_the_text_ways_on_their_topic() -> None:
    args = argparse.Namespace(scenario="banking77", topic=None)
    assert produce._corrupters(args) == {SUPPORT_TOPIC: corrupt_message}
    assert produce._corrupters(argparse.Namespace(scenario="support", topic="x.msgs")) == {"x.msgs": corrupt_message}
    assert produce._corrupters(argparse.Namespace(scenario="payments", topic=None)) == {}


def test_the_shops_support_messages_are_valid_deterministic_and_in_event_time() -> None:
    stream = make_stream("support", seed=7)
    rows = list(stream.iter_dicts(300))
    for event, _ in rows:
        SupportMessage.model_validate(event)
    assert rows == list(make_stream("support", seed=7).iter_dicts(300))
    assert [e["ts_ms"] for e, _ in rows] == sorted(e["ts_ms"] for e, _ in rows)
    assert len({e["message_id"] for e, _ in rows}) == len(rows)


def test_each_message_is_about_its_customers_own_payment_and_written_in_its_intent() -> None:
    world = make_stream("payments", seed=7).world
    payments = make_stream("payments", seed=7)
    assert isinstance(payments, PaymentsSim)
    paid = {e["txn_id"]: (e, t) for e, t in payments.iter_dicts(200_000)}
    messages = list(make_stream("support", seed=7).iter_dicts(400))
    triggers = collections.Counter(truth["trigger"] for _, truth in messages)
    assert set(triggers) == {"declined", "review", "fraud", "late_delivery", "background"}, triggers
    for message, truth in messages:
        txn, txn_truth = paid[truth["txn_id"]]
        assert message["customer_id"] == txn["user_id"]
        assert message["ts_ms"] > txn["ts_ms"]
        assert message["text"] in phrases()[truth["intent"]]
        if truth["trigger"] != "background":
            assert truth["intent"] in dict(TRIGGER_INTENTS[truth["trigger"]])
        if truth["trigger"] in ("declined", "review"):  # declines hit legitimate payments from abroad
            home = COUNTRIES[int(payments.home[world.user_index(txn["user_id"])])][0]
            assert txn["ip_country"] != home and not txn_truth["is_fraud"]
        assert (truth["trigger"] == "fraud") == bool(txn_truth["is_fraud"])


def test_a_customer_whose_payment_was_declined_may_write_again_and_again_about_it() -> None:
    messages = list(make_stream("support", seed=7).iter_dicts(400))
    first = {t["txn_id"]: (m, t) for m, t in messages if t["repeat"] == 0}
    repeats = [(m, t) for m, t in messages if t["repeat"] >= 1]
    assert {t["repeat"] for _, t in repeats} == {1, 2}, "no second and third messages in 400"
    for message, truth in repeats:
        original, why = first[truth["txn_id"]]
        assert truth["trigger"] in ("declined", "review")
        assert (message["customer_id"], truth["intent"]) == (original["customer_id"], why["intent"])
        assert message["ts_ms"] > original["ts_ms"]
    fraud = [t for _, t in messages if t["trigger"] == "fraud"]
    assert len(fraud) == len({t["txn_id"] for t in fraud})


def test_in_all_the_messages_follow_the_payments_sent(shop_rows: list) -> None:  # type: ignore[type-arg]
    sent: dict[str, int] = {}
    latest = 0
    support = []
    for topic, _key, stream, event, truth in shop_rows:
        if stream == "payments":
            sent[event["txn_id"]], latest = event["ts_ms"], event["ts_ms"]
        elif stream == "support":
            assert topic == SUPPORT_TOPIC
            assert truth["txn_id"] in sent and event["ts_ms"] <= latest  # its payment went first
            support.append(event)
    assert 40 < len(support) < 600
    assert support == [e for e, _ in make_stream("support", seed=7).iter_dicts(len(support))]


def test_all_without_support_is_the_four_streams_in_turn(shop_rows: list) -> None:  # type: ignore[type-arg]
    without = list(itertools.islice(sim_rows("all", 7, support=False), 4_000))
    assert [(t, e) for t, _, s, e, _ in without] == [
        (t, e) for t, _, s, e, _ in shop_rows if s != "support"][:4_000]
    assert [s for _, _, s, _, _ in without[:8]] == ["clickstream", "ads", "pricing", "payments"] * 2


def test_desk_alone_schedules_nothing_for_an_ordinary_domestic_payment() -> None:
    desk = SupportDesk.for_world(make_stream("payments", seed=7).world)
    quiet = SupportDesk(desk.payments, replace(desk.config, p_background=0.0), random.Random(1))
    user = 0
    home = COUNTRIES[int(quiet.payments.home[user])][0]
    event = {"txn_id": "t1", "user_id": "u0000000", "ip_country": home, "merchant_category": "grocery",
             "ts_ms": 1_704_067_200_000}
    for _ in range(100):
        quiet.observe(event, {"is_fraud": False, "episode": None})
    assert len(quiet) == 0
