"""``shopstream tail <topic>``: pretty-print scores and decisions as they arrive."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from tools.cli.common import add_bootstrap, kafka_from_args, require_reachable
from tools.cli.describe import describe_record


def register(sub: Any) -> None:
    parser = sub.add_parser("tail", help="print records of a topic (scores, decisions, dead letters)")
    parser.add_argument("topic")
    parser.add_argument("--from-beginning", action="store_true", help="start at the earliest offset (default: latest)")
    parser.add_argument("--json", action="store_true", help="print raw JSON values, one per line")
    parser.add_argument("--key", action="append", default=[], help="only records with this key (repeatable)")
    parser.add_argument("--max", type=int, help="stop after this many records")
    parser.add_argument("--idle-timeout", type=float, help="stop after this many seconds without a record")
    add_bootstrap(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    kafka = kafka_from_args(args)
    require_reachable(kafka)
    consumer = Consumer({**kafka.client_config("shopstream-tail"), "group.id": f"shopstream-tail-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "session.timeout.ms": 6000})  # Tansu holds a group join until a session times out
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = start
        c.assign(partitions)

    consumer.subscribe([args.topic], on_assign=on_assign)
    shown = 0
    keys = {k.encode() for k in args.key}
    idle = 0.0
    try:
        while args.max is None or shown < args.max:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                idle += 0.5
                if args.idle_timeout is not None and idle >= args.idle_timeout:
                    break
                continue
            idle = 0.0
            if keys and msg.key() not in keys:
                continue
            print(_render(msg.topic() or "", msg.key(), msg.value(), args.json), flush=True)
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def _render(topic: str, key: bytes | None, value: bytes | None, raw: bool) -> str:
    text = (value or b"").decode("utf-8", errors="replace")
    if raw:
        return text
    try:
        return describe_record(topic, json.loads(text))
    except (ValueError, TypeError):
        return f"{(key or b'').decode(errors='replace')}: {text[:200]}"
