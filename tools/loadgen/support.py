"""Support messages for ``shopstream produce``: BANKING77's test split replayed, and malformed messages.

* ``banking77`` replays the 3,080 messages of ``intent-banking77-polyai/test.csv`` (CC-BY-4.0,
  Casanueva et al. 2020) in file order as :class:`SupportMessage`\\s on ``support.messages``
  (see :func:`banking77_labelled`); the intent label leaves the event and is the row's truth.
* :func:`corrupt_message` makes the malformed messages a text service meets (``--bad-fraction``):
  control characters, an overlong text, invalid UTF-8, a missing field, or the generic breakages.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.schemas.support import MAX_TEXT_CHARS, SupportChannel, SupportMessage

logger = logging.getLogger(__name__)

BANKING77_FILES = ("intent-banking77-polyai/test.csv",)
BANKING77_START = datetime(2020, 3, 1, tzinfo=UTC)
"""The data set was published in March 2020; the replay clock starts there."""
BANKING77_STEP_MS = 20_000
"""One message every 20 s of event time (the data have no timestamps)."""
BANKING77_CUSTOMERS = 400
"""Customers the messages are spread over: some write more than once, as customers do."""
CHANNEL_WEIGHTS: dict[SupportChannel, float] = {"email": 0.3, "chat": 0.35, "app": 0.25, "phone": 0.1}
REPLAY_SEED = 77

Record = tuple[bytes, bytes]


def banking77_events(paths: list[Path]) -> Iterator[SupportMessage]:
    """One message per test row (see :func:`banking77_labelled`)."""
    return (message for message, _ in banking77_labelled(paths))


def banking77_labelled(paths: list[Path]) -> Iterator[tuple[SupportMessage, dict[str, Any]]]:
    """One message per row of ``test.csv``, with ``{"intent": category}``.

    * ``text`` → ``text`` as written (every test message is 1-1000 characters, no control characters).
    * ``message_id`` ``b77-test-<row>``; ``language`` ``en`` (the data set is English).
    * The data have no customers, channels or times: ``customer_id`` ``b77-c<n>`` is drawn from
      :data:`BANKING77_CUSTOMERS` customers, ``channel`` by :data:`CHANNEL_WEIGHTS`, both with the
      fixed seed :data:`REPLAY_SEED`; ``ts_ms`` starts at :data:`BANKING77_START` and advances
      :data:`BANKING77_STEP_MS` per message.
    """
    rng = random.Random(REPLAY_SEED)
    start_ms = int(BANKING77_START.timestamp() * 1000)
    channels, weights = list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values())
    with paths[0].open(encoding="utf-8", newline="") as fh:
        for row, record in enumerate(csv.DictReader(fh)):
            message = SupportMessage(
                message_id=f"b77-test-{row}", customer_id=f"b77-c{rng.randrange(BANKING77_CUSTOMERS):04d}",
                channel=rng.choices(channels, weights)[0], language="en", text=record["text"],
                ts_ms=start_ms + row * BANKING77_STEP_MS,
            )  # fmt: skip
            yield message, {"intent": record["category"]}


def corrupt_message(record: Record, rng: random.Random) -> Record:
    """A malformed support message: a control character in the text, a text over
    :data:`MAX_TEXT_CHARS`, bytes that are not UTF-8, or a missing ``text``/``customer_id``;
    a sixth of them broken like any other event (:func:`tools.loadgen.generator.corrupt`)."""
    from tools.loadgen.generator import corrupt

    key, value = record
    try:
        message = json.loads(value)
    except ValueError:
        return corrupt(record, rng)
    kind = rng.randrange(6)
    if kind == 0:
        at = rng.randrange(len(message["text"]) + 1)
        message["text"] = message["text"][:at] + rng.choice("\x00\x07\x1b\x7f") + message["text"][at:]
    elif kind == 1:
        message["text"] = (message["text"] + " ") * (MAX_TEXT_CHARS // max(len(message["text"]), 1) + 2)
    elif kind == 2:
        encoded = json.dumps(message, ensure_ascii=False).encode()
        return key, encoded.replace(b'"text": "', b'"text": "\xff\xfe', 1)
    elif kind in (3, 4):
        del message["text" if kind == 3 else "customer_id"]
    else:
        return corrupt(record, rng)
    return key, json.dumps(message, ensure_ascii=False).encode()
