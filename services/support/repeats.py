"""Recent problems per customer: the keyed state behind the ``repeated_problem`` escalation.

A customer's state is ``{"r": [[ts_ms, intent, message_id], ...]}``, oldest first: their newest
messages within the window, at most ``max_kept``. A message is counted once even when it is
scored twice (at-least-once delivery replays a batch after a crash): a message id already
remembered is not added again. Counting looks back from the message's own event time: the messages
of the window that ends at it, itself included, so a replayed message gets the answer it got the
first time even though later ones are remembered by then, and a late one is judged as of its time.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Entry = list[Any]
"""``[ts_ms, intent, message_id]``."""


@dataclass(frozen=True, slots=True)
class RepeatRule:
    """When a problem counts as repeated: ``count`` messages about it within ``window_ms``."""

    count: int
    window_ms: int
    max_kept: int

    def remember(self, entries: list[Entry], ts_ms: int, intent: str, message_id: str) -> list[Entry]:
        """A new list: ``entries`` with this message (unless already there), trimmed to the window and bound."""
        if any(e[2] == message_id for e in entries):
            return entries
        kept = list(entries)
        at = bisect.bisect_right([e[0] for e in kept], ts_ms)
        kept.insert(at, [ts_ms, intent, message_id])
        horizon = kept[-1][0] - self.window_ms
        return [e for e in kept if e[0] >= horizon][-self.max_kept :]

    def within(self, entries: list[Entry], ts_ms: int, problem: str, problem_of: Callable[[str], str]) -> int:
        """Messages in ``entries`` in the window that ends at ``ts_ms`` about ``problem`` (by ``problem_of``)."""
        start = ts_ms - self.window_ms
        return sum(1 for e in entries if start <= e[0] <= ts_ms and problem_of(e[1]) == problem)


def entries_of(value: dict[str, Any] | None) -> list[Entry]:
    """A customer's entries from their stored state (``None``: a new customer)."""
    if not value:
        return []
    return [e for e in value.get("r", []) if isinstance(e, list) and len(e) == 3]
