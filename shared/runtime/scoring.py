"""One try at scoring a batch, as a transaction on the state store.

The runtime's contract with a scorer says that a scorer that raises gets the same batch again,
against the same state. This is where that holds: the batch's state writes are staged and applied
only when ``score()`` returns one result per event; a raise (or a wrong number of results)
discards them. Unit tests of stateful scorers drive their retries through this same function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.errors import ScoringError
from shared.runtime.scorer import Event, Scorer, ScoreResult
from shared.runtime.state import StateStore


def score_batch(scorer: Scorer[Any], events: Sequence[Event[Any]], state: StateStore | None) -> Sequence[ScoreResult]:
    """Score ``events``; their state writes are applied only if this returns."""
    if state is not None:
        state.begin()
    try:
        results = scorer.score(events)
        if len(results) != len(events):
            raise ScoringError(f"scorer returned {len(results)} results for {len(events)} events")
    except BaseException:
        if state is not None:
            state.rollback()
        raise
    if state is not None:
        state.commit()
    return results


def probe(scorer: Scorer[Any], event: Event[Any], state: StateStore | None) -> bool:
    """Whether the scorer scores ``event`` now. Nothing is kept: its state writes are discarded
    and its result dropped. The loop probes with an event that scored before, to tell a record the
    scorer fails on (poison) from a scorer that fails on everything (systemic)."""
    if state is not None:
        state.begin()
    try:
        return len(scorer.score([event])) == 1
    except Exception:
        return False
    finally:
        if state is not None:
            state.rollback()
