"""The demo shows the fifth service in human terms: what the customer wrote, the intent, the queue,
and in its summary the messages per queue and the escalation rate."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from services.support.scorer import SupportMetrics
from shared.runtime.metrics import BusinessMetrics
from tools.cli.demo_view import MessageTexts, business_line
from tools.cli.describe import describe_record
from tools.cli.promtext import parse

INTENT = {"message_id": "s1-0", "customer_id": "c0123", "intent": "declined_card_payment", "probability": 0.94,
          "top3": [], "queue": "payments", "escalate": False, "escalation_reasons": []}


def test_an_intent_joined_with_its_message_reads_as_the_issue_shows_it() -> None:
    texts = MessageTexts()
    texts.add(json.dumps({"message_id": "s1-0", "customer_id": "c0123",
                          "text": "my card payment\nwas declined twice"}).encode())
    line = describe_record("support.intents", texts.join(INTENT))
    assert line == ("customer c0123: 'my card payment was declined twice' → declined_card_payment (0.94) "
                    "→ payments queue")


def test_an_unjoined_or_escalated_intent_still_says_what_it_can() -> None:
    escalated = {**INTENT, "escalate": True, "escalation_reasons": ["repeated_problem"]}
    assert describe_record("support.intents", MessageTexts().join(escalated)) == (
        "customer c0123: s1-0 → declined_card_payment (0.94) → payments queue, escalated (repeated_problem)")
    long = {**INTENT, "text": "x" * 200}
    assert describe_record("support.intents", long).count("x") == 60


def test_the_message_memory_is_bounded_and_skips_malformed_messages() -> None:
    texts = MessageTexts(capacity=2)
    texts.add(b"\xff not json")
    texts.add(b'{"message_id": "a"}')
    for i in range(3):
        texts.add(json.dumps({"message_id": f"m{i}", "text": f"t{i}"}).encode())
    assert [texts.join({"message_id": f"m{i}"}).get("text") for i in range(3)] == [None, "t1", "t2"]


def test_the_summary_line_counts_messages_per_queue_and_the_escalation_rate() -> None:
    registry = CollectorRegistry()
    business, support = BusinessMetrics(registry), SupportMetrics(registry)
    support.queue.labels("support", "payments").inc(12)
    support.queue.labels("support", "cards").inc(5)
    support.escalations.labels("support", "low_confidence").inc(2)
    support.escalations.labels("support", "repeated_problem").inc(1)
    business.decisions.labels("support", "escalate").inc(3)
    business.decisions.labels("support", "route").inc(14)
    snap = parse(generate_latest(registry).decode())
    assert business_line(snap) == (
        "queues payments=12 cards=5  escalated 3/17 (17.6 %: low_confidence=2 repeated_problem=1)")
