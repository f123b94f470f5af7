"""The loops shopstream is measured against, each run as its own process.

* ``io-limit``: the I/O limit. Consume a batch (what is ready, up to the batch size) → write,
  for each record, what the service writes for an event (its captured record set, see
  :mod:`tools.bench.record_set`: the same records per event on the same topics, changelog
  included, same sizes and headers) →
  asynchronous produce → asynchronous commit every ``commit_interval_ms``. No decoding, no
  scoring: the most any service could do on this broker.
* ``plain-batched``: the batched plain loop. Consume up to the service's batch size → the
  service's own scorer on that batch (decoded by the runtime's codec, outputs serialised as the
  runtime does) → asynchronous produce → periodic asynchronous commit. No dead-letter topic
  (a bad record is dropped), no changelog (the scorer's state lives only in memory), no delivery
  guarantees (offsets are committed whether or not the outputs were acknowledged). It is the
  control that shows what the runtime's guarantees cost.
* ``naive-sync``: one record at a time through the same scorer, each output produced and
  ``flush()``-ed, then a synchronous commit per record: two round trips per event.

``python -m tools.bench.loops io-limit|plain-batched|naive-sync --service S --bootstrap B
--topics JSON --count N [--batch B] [--records PATH] [--linger]``

Each loop prints ``ready`` once its clients (and model) are set up, so the caller can start
counting CPU time there; with ``--linger`` it then stays alive after its last record until it
is terminated, so the caller can still read its CPU time and peak RSS from ``/proc``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import cast

from confluent_kafka import Consumer, Message, Producer

from shared.kafka.clients import make_consumer, make_producer
from shared.kafka.message import MessageLike
from shared.runtime.delivery import OutRecord
from shared.settings import KafkaSettings, RuntimeSettings
from tools.bench.record_set import CHANGELOG, RecordSet, lineage_of

LOOPS = ("io-limit", "plain-batched", "naive-sync")
LINGER_S = 600.0
COMMIT_INTERVAL_S = RuntimeSettings().commit_interval_ms / 1000
"""The runtime's default at-least-once commit interval."""

Batch = Callable[[Sequence[Message]], Sequence[OutRecord]]


def _clients(bootstrap: str, loop: str) -> tuple[Consumer, Producer]:
    """The service's own client settings; offsets are stored on consume (no delivery tracking)."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    consumer = make_consumer(kafka, f"bench-{loop}", f"{loop}-{uuid.uuid4().hex}",
                             {"enable.auto.offset.store": True})
    return consumer, make_producer(kafka, f"bench-{loop}")


def _ready() -> None:
    print("ready", flush=True)


def produce(producer: Producer, record: OutRecord) -> None:
    """Asynchronous produce; a full local queue is drained, never dropped."""
    partition = record.partition if record.partition is not None else -1
    while True:
        try:
            producer.produce(record.topic, record.value, record.key, partition=partition, headers=record.headers)
            return
        except BufferError:
            producer.poll(0.05)


def batched_loop(bootstrap: str, loop: str, source: str, count: int, batch: int, handle: Batch) -> None:
    """Consume up to ``batch`` → ``handle`` → asynchronous produce; asynchronous commits on a timer."""
    consumer, producer = _clients(bootstrap, loop)
    consumer.subscribe([source])
    _ready()
    done, last_commit = 0, time.monotonic()
    while done < count:
        messages = [m for m in ready_records(consumer, batch) if m.error() is None]
        for record in handle(messages):
            produce(producer, record)
        producer.poll(0)
        done += len(messages)
        if messages and time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
            consumer.commit(asynchronous=True)
            last_commit = time.monotonic()
    producer.flush()
    consumer.commit(asynchronous=True)
    consumer.close()


def ready_records(consumer: Consumer, batch: int) -> list[Message]:
    """Up to ``batch`` records that are ready now; only when none is, wait up to 100 ms for the
    first. The runtime's policy ("batch what is there"): ``consume(batch, timeout)`` would wait
    for a full batch, so a loop using it would lose on latency for a reason that is not the work."""
    messages = consumer.consume(batch, 0)
    if messages:
        return messages
    first = consumer.poll(0.1)
    return [] if first is None else [first, *consumer.consume(batch - 1, 0)] if batch > 1 else [first]


def io_limit_handler(record_set: RecordSet, topics: Mapping[str, str]) -> Batch:
    """For the ``i``-th consumed record, the records the service wrote for the ``i``-th captured event."""
    consumed = 0

    def handle(messages: Sequence[Message]) -> list[OutRecord]:
        nonlocal consumed
        out: list[OutRecord] = []
        for msg in messages:
            lineage = lineage_of(cast(MessageLike, msg))
            partition = msg.partition()
            for r in record_set.for_input(consumed):
                out.append(OutRecord(topics[r.role], r.key, r.value, r.headers_for(lineage),
                                     partition if r.role == CHANGELOG else None))
            consumed += 1
        return out

    return handle


def plain_handler(service: str, topics: Mapping[str, str]) -> Batch:
    """The service's scorer on each batch; dead letters are dropped (no DLQ), nothing else is written."""
    from tools.bench.scoring import ServiceHarness

    harness = ServiceHarness(service, topics)
    dlq = harness.settings.resolved_dlq_topic

    def handle(messages: Sequence[Message]) -> list[OutRecord]:
        if not messages:
            return []
        return [r for r in harness.score(cast(Sequence[MessageLike], messages)) if r.topic != dlq]

    return handle


def naive_sync_loop(bootstrap: str, service: str, topics: Mapping[str, str], count: int) -> None:
    """One record at a time through ``service``'s scorer; every output produced and flushed, then a
    synchronous commit of that record's offset."""
    from tools.bench.scoring import ServiceHarness

    harness = ServiceHarness(service, topics)
    consumer, producer = _clients(bootstrap, "naive-sync")
    consumer.subscribe([topics["input_topic"]])
    _ready()
    done = 0
    while done < count:
        msg = consumer.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        for record in harness.score([cast(MessageLike, msg)]):
            produce(producer, record)
        producer.flush()
        consumer.commit(message=msg, asynchronous=False)
        done += 1
    consumer.close()
    harness.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("--service", required=True, help="whose scorer (plain-batched, naive-sync) or topics")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="the service's topic settings (JSON, as bench_topics)")
    parser.add_argument("--count", type=int, required=True, help="input records to read")
    parser.add_argument("--batch", type=int, default=RuntimeSettings().max_batch_size,
                        help="records per consume (the service's max batch size)")
    parser.add_argument("--records", type=Path, help="io-limit: the captured record set (RecordSet.save)")
    parser.add_argument("--linger", action="store_true", help="stay alive after the last record until terminated")
    args = parser.parse_args()
    topics: dict[str, str] = json.loads(args.topics)
    if args.loop == "naive-sync":
        naive_sync_loop(args.bootstrap, args.service, topics, args.count)
    else:
        if args.loop == "io-limit":
            if args.records is None:
                parser.error("io-limit needs --records")
            handle = io_limit_handler(RecordSet.load(args.records), topics)
        else:
            handle = plain_handler(args.service, topics)
        batched_loop(args.bootstrap, args.loop, topics["input_topic"], args.count, args.batch, handle)
    if args.linger:
        time.sleep(LINGER_S)


if __name__ == "__main__":
    main()
