"""``shopstream dlq inspect|redrive``: understand dead letters and send fixed ones back."""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter, defaultdict
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer

from shared.schemas.deadletter import DeadLetter
from shared.schemas.headers import DLQ_SUFFIX
from shared.settings import KafkaSettings
from tools.cli.common import add_bootstrap, kafka_from_args, require_reachable, subparsers


def register(sub: Any) -> None:
    parser = sub.add_parser("dlq", help="inspect dead letters or send them back to their input topic")
    actions = subparsers(parser, "dlq_command")
    inspect = actions.add_parser("inspect", help="group dead letters by reason, with examples")
    inspect.add_argument("topic", help="the DLQ topic (or its input topic; .dlq is appended)")
    inspect.add_argument("--examples", type=int, default=2, help="examples per reason")
    inspect.add_argument("--json", action="store_true", help="machine-readable summary")
    add_bootstrap(inspect)
    inspect.set_defaults(handler=run_inspect)
    redrive = actions.add_parser("redrive", help="re-publish dead letters to their source topic")
    redrive.add_argument("topic", help="the DLQ topic (or its input topic)")
    redrive.add_argument("--reason", action="append", default=[], help="only these reasons (repeatable)")
    redrive.add_argument("--to", help="target topic (default: each record's x-source-topic)")
    redrive.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    add_bootstrap(redrive)
    redrive.set_defaults(handler=run_redrive)


def dlq_name(topic: str) -> str:
    return topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX


def read_all(kafka: KafkaSettings, topic: str) -> list[tuple[DeadLetter, bytes | None, bytes | None]]:
    """Every record currently on ``topic``, from the beginning to the end."""
    require_reachable(kafka)
    consumer = Consumer({**kafka.client_config("shopstream-dlq"), "group.id": f"shopstream-dlq-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         # short: Tansu holds a group join until a session times out (10 s idle limit below)
                         "enable.partition.eof": True, "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    letters: list[tuple[DeadLetter, bytes | None, bytes | None]] = []
    eof: set[int] = set()
    partitions: int | None = None
    idle = 0
    try:
        while idle < 20 and (partitions is None or len(eof) < partitions):
            msg = consumer.poll(0.5)
            if partitions is None and consumer.assignment():
                partitions = len(consumer.assignment())
            if msg is None:
                idle += 1
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition() or 0)
                continue
            raw_headers = msg.headers() or []
            headers = list(raw_headers.items()) if isinstance(raw_headers, dict) else raw_headers
            letters.append((DeadLetter.from_record(headers, msg.key(), msg.value()), msg.key(), msg.value()))
    finally:
        consumer.close()
    return letters


def run_inspect(args: argparse.Namespace) -> int:
    letters = read_all(kafka_from_args(args), dlq_name(args.topic))
    by_reason: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter, _, _ in letters:
        by_reason[letter.error_reason or "unknown"].append(letter)
    if args.json:
        print(json.dumps({r: {"count": len(ls), "examples": [ls_.model_dump() for ls_ in ls[: args.examples]]}
                          for r, ls in by_reason.items()}, indent=2))
        return 0
    print(f"{len(letters)} dead letters on {dlq_name(args.topic)}")
    for reason, group in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        print(f"\n{reason}: {len(group)}")
        for letter in group[: args.examples]:
            where = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
            print(f"  {where} {letter.error_message}\n    value: {letter.value[:160]}")
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    kafka = kafka_from_args(args)
    letters = [x for x in read_all(kafka, dlq_name(args.topic)) if not args.reason or x[0].error_reason in args.reason]
    targets: Counter[str] = Counter()
    producer = None if args.dry_run else Producer({**kafka.client_config("shopstream-redrive"),
                                                   "enable.idempotence": True, "partitioner": "murmur2_random"})
    for letter, key, value in letters:
        target = args.to or letter.source_topic
        if not target:
            continue
        targets[target] += 1
        if producer is not None:
            producer.produce(target, value, key, headers=[("x-redriven-from", dlq_name(args.topic).encode())])
            producer.poll(0)
    if producer is not None and producer.flush(30):
        print("some records were not acknowledged")
        return 1
    verb = "would send" if args.dry_run else "sent"
    for target, count in targets.items():
        print(f"{verb} {count} records to {target}")
    if not targets:
        print("nothing to redrive")
    return 0
