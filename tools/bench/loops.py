"""Baselines the runtime is measured against, each run as its own process.

* ``bare``: consume → produce → commit with no work at all (the I/O limit).
* ``naive``: the per-message loop a first version would be: consume one record, score it,
  produce it synchronously, commit synchronously. With ``--service`` it scores with that
  service's own scorer (its feature code, ONNX Runtime at batch 1) and writes the records the
  service would write (``--topics``: the service's topic settings as JSON).

``python -m tools.bench.loops bare|naive --bootstrap B --input T --output T2 --count N [--service S]``

Each loop prints ``ready`` once its clients (and model) are set up, so the caller can start
counting CPU time there; with ``--linger`` it then stays alive after its last record until it
is terminated, so the caller can still read its CPU time and peak RSS from ``/proc``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
import zlib
from collections.abc import Callable
from typing import cast

from confluent_kafka import Consumer, Message, Producer

from shared.kafka.message import MessageLike
from shared.schemas import headers as h

Score = Callable[[bytes], bytes]
LINGER_S = 600.0


def echo_score(value: bytes) -> bytes:
    event = json.loads(value)
    return json.dumps({"id": event["id"], "score": (zlib.crc32(event["id"].encode()) % 1000) / 1000}).encode()


def _clients(bootstrap: str, group: str) -> tuple[Consumer, Producer]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                         "acks": "all", "compression.type": "lz4"})
    return consumer, producer


def _event_header(msg: Message) -> list[tuple[str, str | bytes | None]]:
    return [(h.EVENT_TIME_MS, str(msg.timestamp()[1]).encode())]


def bare_loop(bootstrap: str, source: str, sink: str, count: int) -> None:
    consumer, producer = _clients(bootstrap, f"bare-{uuid.uuid4().hex}")
    consumer.subscribe([source])
    _ready()
    done = 0
    while done < count:
        batch = [m for m in consumer.consume(1000, 0.1) if m.error() is None]
        for msg in batch:
            producer.produce(sink, msg.value(), msg.key(), headers=_event_header(msg))
        done += len(batch)
        if batch:
            producer.flush()
            consumer.commit(asynchronous=False)
    consumer.close()


def _ready() -> None:
    print("ready", flush=True)


def naive_loop(bootstrap: str, source: str, sink: str, count: int, score: Score = echo_score) -> None:
    consumer, producer = _clients(bootstrap, f"naive-{uuid.uuid4().hex}")
    consumer.subscribe([source])
    _ready()
    done = 0
    while done < count:
        msg = consumer.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        producer.produce(sink, score(msg.value() or b"{}"), msg.key(), headers=_event_header(msg))
        producer.flush()
        consumer.commit(message=msg, asynchronous=False)
        done += 1
    consumer.close()


def naive_service_loop(bootstrap: str, service: str, topics: dict[str, str], count: int) -> None:
    """One record at a time through ``service``'s scorer; every output produced and flushed."""
    from tools.bench.scoring import ServiceHarness

    harness = ServiceHarness(service, topics)
    consumer, producer = _clients(bootstrap, f"naive-{uuid.uuid4().hex}")
    consumer.subscribe([topics["input_topic"]])
    _ready()
    done = 0
    while done < count:
        msg = consumer.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        for record in harness.score([cast(MessageLike, msg)]):
            producer.produce(record.topic, record.value, record.key, headers=record.headers)
        producer.flush()
        consumer.commit(message=msg, asynchronous=False)
        done += 1
    consumer.close()
    harness.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("loop", choices=["bare", "naive"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--service", help="naive: score with this service's scorer")
    parser.add_argument("--topics", default="{}", help="naive --service: the service's topic settings (JSON)")
    parser.add_argument("--linger", action="store_true", help="stay alive after the last record until terminated")
    args = parser.parse_args()
    if args.loop == "naive" and args.service:
        topics = {"input_topic": args.input, "output_topic": args.output, **json.loads(args.topics)}
        naive_service_loop(args.bootstrap, args.service, topics, args.count)
    else:
        loop = bare_loop if args.loop == "bare" else naive_loop
        loop(args.bootstrap, args.input, args.output, args.count)
    if args.linger:
        time.sleep(LINGER_S)


if __name__ == "__main__":
    main()
