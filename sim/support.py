"""Customer-support messages caused by what happened to the customer in the shop's payments.

The support desk follows the ``payments`` stream of the same world and seed, row by row, and
schedules the messages its customers write about it, later in event time:

* **declined**: a legitimate payment from abroad looks like fraud; the shop declines it (or holds
  it for review) with :attr:`SupportConfig.p_declined`, and the customer writes with
  :attr:`SupportConfig.p_write_declined` (``declined_card_payment``, ``card_not_working``; a held
  one ``pending_card_payment``). A share writes again about it (a repeat: the service's escalation).
* **fraud**: the cardholder of a fraud episode notices it with :attr:`SupportConfig.p_notice_fraud`
  once per episode (``card_payment_not_recognised``, ``compromised_card``, ``extra_charge_on_statement``).
* **late_delivery**: an order of physical goods arrives late with :attr:`SupportConfig.p_late`
  and its buyer writes about the money with :attr:`SupportConfig.p_write_late` (``request_refund``,
  ``Refund_not_showing_up``, ``pending_card_payment``): BANKING77 is a bank's data set, so the
  shop's customers talk about their card and their money, not the parcel.
* **background**: any customer paying asks about anything (one of the 77 intents, uniformly).

Texts are real customer messages: BANKING77 training messages of the intent (CC-BY-4.0, copied
into ``sim/banking77_phrases.json``; see ``sim/README.md``). The row's truth names the trigger,
the intent the text was written for, the payment and whether it is a repeat.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from shared.schemas.support import SupportMessage
from sim.payments import COUNTRIES, PaymentsConfig, PaymentsSim
from sim.stream import Row, SimStream
from sim.world import World, stable_seed

logger = logging.getLogger(__name__)

PHRASES_FILE = Path(__file__).with_name("banking77_phrases.json")
CHANNELS = ("email", "chat", "app", "phone")
PHYSICAL_GOODS = frozenset({"fashion", "electronics", "jewellery", "home"})
TRIGGER_INTENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "declined": (("declined_card_payment", 0.8), ("card_not_working", 0.2)),
    "review": (("pending_card_payment", 1.0),),
    "fraud": (("card_payment_not_recognised", 0.6), ("compromised_card", 0.25), ("extra_charge_on_statement", 0.15)),
    "late_delivery": (("request_refund", 0.6), ("Refund_not_showing_up", 0.2), ("pending_card_payment", 0.2)),
}  # fmt: skip
"""The intents (with weights) a customer's message about each trigger is drawn from."""


@cache
def phrases() -> dict[str, tuple[str, ...]]:
    """Intent → BANKING77 training messages of that intent (read once from :data:`PHRASES_FILE`)."""
    doc = json.loads(PHRASES_FILE.read_text(encoding="utf-8"))
    return {intent: tuple(texts) for intent, texts in doc["intents"].items()}


@dataclass(frozen=True, slots=True)
class SupportConfig:
    shop: str = "A"
    """The payments shop followed (the same rows as ``make_stream("payments", shop=...)``)."""
    p_declined: float = 0.6
    """A legitimate payment from abroad is declined or held (a fraud model's false positive)."""
    p_review: float = 0.3
    """Of those, the share held for review rather than declined."""
    p_write_declined: float = 0.8
    p_repeat: float = 0.45
    """A customer who wrote about a decline or hold writes again about it (and again, up to
    :attr:`max_repeats` more times): the third message is the service's repeated-problem escalation."""
    max_repeats: int = 2
    p_notice_fraud: float = 0.5
    """The cardholder of a fraud episode notices and writes (once per episode)."""
    p_late: float = 0.04
    """An order of physical goods arrives late."""
    p_write_late: float = 0.5
    p_background: float = 0.006
    """Any payment's customer writes about something else."""
    delay_s: tuple[float, float] = (5.0, 60.0)
    """Event-time seconds from the payment to the message (compressed, like the outcomes' delays)."""
    repeat_delay_s: tuple[float, float] = (10.0, 45.0)
    channel_weights: tuple[float, ...] = (0.3, 0.35, 0.25, 0.1)
    """Of :data:`CHANNELS`."""


@dataclass
class SupportDesk:
    """Follows payment rows (:meth:`observe`) and hands out the messages due (:meth:`due`).

    Deterministic for its seed and the rows it is shown; one thread uses it.
    """

    payments: PaymentsSim
    config: SupportConfig
    rng: random.Random
    _heap: list[tuple[int, int, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    _seq: int = 0
    _episodes: set[int] = field(default_factory=set)

    @classmethod
    def for_world(cls, world: World, config: SupportConfig | None = None) -> SupportDesk:
        cfg = config or SupportConfig()
        payments = PaymentsSim(world, PaymentsConfig(shop=cfg.shop))
        return cls(payments, cfg, random.Random(stable_seed(world.config.seed, "support", cfg.shop)))

    def __len__(self) -> int:
        return len(self._heap)

    def observe(self, event: dict[str, Any], truth: dict[str, Any]) -> None:
        """Called for each payment row, in the payments stream's order."""
        trigger = self._trigger(event, truth)
        if trigger is not None:
            self._schedule(trigger, event, self.config.delay_s, repeat=0)

    def due(self, until_ms: int) -> list[Row]:
        """Messages whose event time is at or before ``until_ms``, earliest first."""
        out = []
        while self._heap and self._heap[0][0] <= until_ms:
            _, _, message, truth = heapq.heappop(self._heap)
            out.append((message, truth))
        return out

    def _trigger(self, event: dict[str, Any], truth: dict[str, Any]) -> str | None:
        cfg, r = self.config, self.rng.random()
        if truth["is_fraud"]:
            episode = int(truth["episode"])
            if episode in self._episodes:
                return None
            self._episodes.add(episode)
            if len(self._episodes) > 10_000:
                self._episodes.clear()  # old episodes are over; a bounded memory is enough
            return "fraud" if r < cfg.p_notice_fraud else None
        user = int(event["user_id"][1:])
        if event["ip_country"] != COUNTRIES[int(self.payments.home[user])][0]:
            p_hit = cfg.p_declined * cfg.p_write_declined
            if r < p_hit:
                return "review" if r < p_hit * cfg.p_review else "declined"
            r -= p_hit
        if event["merchant_category"] in PHYSICAL_GOODS:
            p_hit = cfg.p_late * cfg.p_write_late
            if r < p_hit:
                return "late_delivery"
            r -= p_hit
        return "background" if r < cfg.p_background else None

    def _schedule(self, trigger: str, event: dict[str, Any], delay_s: tuple[float, float], repeat: int,
                  intent: str | None = None, channel: str | None = None) -> None:
        rng = self.rng
        intent = intent or self._intent(trigger)
        channel = channel or rng.choices(CHANNELS, self.config.channel_weights)[0]
        ts = int(event["ts_ms"]) + round(rng.uniform(*delay_s) * 1000)
        message = {"message_id": f"s{event['txn_id'][1:]}-{repeat}", "customer_id": event["user_id"],
                   "channel": channel, "language": "en", "text": rng.choice(phrases()[intent]), "ts_ms": ts}
        truth = {"trigger": trigger, "intent": intent, "txn_id": event["txn_id"], "repeat": repeat}
        heapq.heappush(self._heap, (ts, self._seq, message, truth))
        self._seq += 1
        cfg = self.config
        if trigger in ("declined", "review") and repeat < cfg.max_repeats and rng.random() < cfg.p_repeat:
            later = {"ts_ms": ts, "txn_id": event["txn_id"], "user_id": event["user_id"]}
            self._schedule(trigger, later, cfg.repeat_delay_s, repeat + 1, intent, channel)

    def _intent(self, trigger: str) -> str:
        if trigger == "background":
            return self.rng.choice(sorted(phrases()))
        names, weights = zip(*TRIGGER_INTENTS[trigger], strict=True)
        return str(self.rng.choices(names, weights)[0])


class SupportSim(SimStream):
    """The support messages of the shop's payments (the payments themselves are not yielded)."""

    name = "support"
    model = SupportMessage
    key_field = "customer_id"

    def __init__(self, world: World, config: SupportConfig | None = None) -> None:
        super().__init__(world)
        self.config = config or SupportConfig()

    def chunks(self) -> Iterator[list[Row]]:
        desk = SupportDesk.for_world(self.world, self.config)
        for chunk in desk.payments.chunks():
            for event, truth in chunk:
                desk.observe(event, truth)
            yield desk.due(int(chunk[-1][0]["ts_ms"]) if chunk else 0)
