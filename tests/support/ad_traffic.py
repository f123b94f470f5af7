"""Simulated ad requests and the shop's clicks on them, as feedback outcomes (live-quality tests)."""

from __future__ import annotations

import json
import time

from sim.registry import make_stream


def requests_and_clicks(start: int, count: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Ad requests and, for each, the feedback outcome of every candidate shown (the sim's sampled click)."""
    rows = list(make_stream("ads", max_candidates=40).iter_dicts(start + count))[start:]
    now = int(time.time() * 1000)
    events, outcomes = [], []
    for event, truth in rows:
        key = str(event["request_id"]).encode()
        events.append((key, json.dumps(event).encode()))
        shown = [{"ad_id": c["ad_id"], "clicked": bool(clicked)}
                 for c, clicked in zip(event["candidates"], truth["click"], strict=True)]
        outcome = {"kind": "outcome", "service": "ad_ctr", "ts_ms": now,
                   "record": {"request_id": event["request_id"], "shown": shown}}
        outcomes.append((key, json.dumps(outcome).encode()))
    return events, outcomes
