"""In-memory Kafka clients for the runtime's unit tests (no broker).

:class:`FakeConsumer` keeps a log per partition and a position per partition, so ``seek`` really
replays records; it records pause/resume/seek/commit calls and runs the rebalance callbacks given
to ``subscribe`` when a test calls :meth:`FakeConsumer.assign` or :meth:`FakeConsumer.revoke`.
:class:`FakeProducer` queues records and acknowledges them on ``poll``/``flush``; a test can make
deliveries fail. :class:`FakeClients` is the :class:`~shared.runtime.factories.ClientFactory`
handing them to :class:`~shared.runtime.app.ServiceApp`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from shared.kafka.clients import StatsCallback
from shared.kafka.protocols import DeliveryCallback, OutHeaders, RebalanceCallback
from shared.runtime.factories import ErrorCallback
from shared.runtime.state import StateStore
from shared.runtime.topics import TopicSpecs
from tests.support.stubs import StubMessage


def echo_record(key: str, value: float = 0.0) -> tuple[bytes, bytes]:
    return key.encode(), json.dumps({"id": key, "value": value}).encode()


class FakeConsumer:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.log: dict[int, list[StubMessage]] = defaultdict(list)
        self.position: dict[int, int] = defaultdict(int)
        self.assigned: set[int] = set()
        self.paused: set[int] = set()
        self.pause_calls = 0
        self.resume_calls = 0
        self.seeks: list[tuple[int, int]] = []
        self.commits: list[dict[int, int]] = []
        self.errors: list[StubMessage] = []
        """Error events the next ``consume`` returns before any record."""
        self.timeouts: list[float] = []
        """The timeout of every ``consume`` call."""
        self.poll_timeouts: list[float] = []
        """The timeouts of idle waits for a first record (``poll``)."""
        self.revoke_during_next_consume: list[int] = []
        """Partitions the next ``consume`` revokes after taking its records, as librdkafka serves
        a rebalance inside the call that also returns records fetched before it."""
        self.closed = False
        self._callbacks: dict[str, RebalanceCallback | None] = {}

    # -- what a test does ----------------------------------------------------------------

    def append(self, partition: int, key: bytes | None, value: bytes | None) -> StubMessage:
        msg = StubMessage(value, key, self.topic, partition, len(self.log[partition]))
        self.log[partition].append(msg)
        return msg

    def assign(self, partitions: Iterable[int]) -> None:
        numbers = sorted(partitions)
        self._call("on_assign", numbers)
        self.assigned.update(numbers)

    def revoke(self, partitions: Iterable[int], lost: bool = False) -> None:
        numbers = sorted(partitions)
        self._call("on_lost" if lost else "on_revoke", numbers)
        self.assigned -= set(numbers)
        self.paused -= set(numbers)

    def _call(self, name: str, numbers: list[int]) -> None:
        callback = self._callbacks.get(name)
        if callback is not None:
            callback(self, [TopicPartition(self.topic, p) for p in numbers])

    @property
    def committed(self) -> dict[int, int]:
        merged: dict[int, int] = {}
        for commit in self.commits:
            merged.update(commit)
        return merged

    # -- the consumer API the runtime uses ------------------------------------------------

    def subscribe(self, topics: list[str], on_assign: RebalanceCallback | None = None,
                  on_revoke: RebalanceCallback | None = None, on_lost: RebalanceCallback | None = None) -> None:
        assert topics == [self.topic]
        self._callbacks = {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[StubMessage]:
        self.timeouts.append(timeout)
        out, self.errors = list(self.errors), []
        for partition in sorted(self.assigned - self.paused):
            records = self.log[partition][self.position[partition]:]
            taken = records[: max(num_messages - len(out), 0)]
            self.position[partition] += len(taken)
            out.extend(taken)
        if self.revoke_during_next_consume:
            revoked, self.revoke_during_next_consume = self.revoke_during_next_consume, []
            self.revoke(revoked)
        return out

    def poll(self, timeout: float = -1) -> StubMessage | None:
        self.poll_timeouts.append(timeout)
        taken = self.consume(1, timeout)
        self.timeouts.pop()
        return taken[0] if taken else None

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(self.assigned)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.pause_calls += 1
        self.paused.update(tp.partition for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resume_calls += 1
        self.paused -= {tp.partition for tp in partitions}

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.partition, partition.offset))
        self.position[partition.partition] = partition.offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> Any:
        self.commits.append({tp.partition: tp.offset for tp in offsets})
        return None if asynchronous else offsets

    def consumer_group_metadata(self) -> Any:
        return "group-metadata"

    def close(self) -> None:
        self.closed = True


@dataclass
class Produced:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int
    headers: OutHeaders


@dataclass
class FakeProducer:
    fail_topics: set[str] = field(default_factory=set)
    """Deliveries to these topics fail (as librdkafka reports a timed-out message)."""
    hold: bool = False
    """While set, nothing is acknowledged (a slow broker): records stay in flight."""
    abort_commits: int = 0
    """This many ``commit_transaction`` calls fail with an error that requires an abort."""
    timed_out_commits: int = 0
    """This many ``commit_transaction`` calls time out (retriable: the brokers are away)."""
    on_commit: Callable[[], None] = lambda: None
    """Called at every ``commit_transaction`` (a test looks at the service's health there)."""
    refuse_topics: set[str] = field(default_factory=set)
    """``produce`` to these topics raises, as librdkafka refuses a topic it knows it may not write."""
    delivered: list[Produced] = field(default_factory=list)
    queued: list[tuple[Produced, DeliveryCallback | None]] = field(default_factory=list)
    transaction: list[Produced] = field(default_factory=list)
    transaction_offsets: dict[int, int] = field(default_factory=dict)
    """The input offsets the last transaction committed (exactly-once's commit)."""
    aborted: int = 0

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int = -1, *,
                on_delivery: DeliveryCallback | None = None, headers: OutHeaders | None = None) -> None:
        record = Produced(topic, key, value, partition, list(headers or []))
        if topic in self.refuse_topics:
            raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
        if on_delivery is None:  # inside a transaction: visible once it commits
            self.transaction.append(record)
        else:
            self.queued.append((record, on_delivery))

    def poll(self, timeout: float = -1) -> int:
        if self.hold:
            return 0
        queued, self.queued = self.queued, []
        for record, callback in queued:
            error = KafkaError(KafkaError._MSG_TIMED_OUT) if record.topic in self.fail_topics else None
            if error is None:
                self.delivered.append(record)
            if callback is not None:
                callback(error, None)
        return len(queued)

    def flush(self, timeout: float = -1) -> int:
        self.poll()
        return len(self.queued)

    def __len__(self) -> int:
        return len(self.queued)

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(r.value or b"null") for r in self.delivered if r.topic == topic]

    # transactions: records produced without a callback wait in ``transaction`` until committed

    def init_transactions(self, timeout: float = -1) -> None: ...

    def begin_transaction(self) -> None:
        self.transaction = []

    def send_offsets_to_transaction(self, positions: list[TopicPartition], group_metadata: Any,
                                    timeout: float = -1) -> None:
        self.transaction_offsets = {tp.partition: tp.offset for tp in positions}

    def commit_transaction(self, timeout: float = -1) -> None:
        self.on_commit()
        if self.timed_out_commits:
            self.timed_out_commits -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected", retriable=True))
        if self.abort_commits:
            self.abort_commits -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "injected", txn_requires_abort=True))
        self.delivered.extend(self.transaction)
        self.transaction = []

    def abort_transaction(self, timeout: float = -1) -> None:
        self.transaction = []
        self.aborted += 1


class FakeConfigReader:
    def __init__(self, topic: str, values: dict[str, dict[str, Any]]) -> None:
        self.topic = topic
        self.values = values
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self.started

    def get(self, key: str) -> dict[str, Any] | None:
        return self.values.get(key)

    def close(self) -> None:
        self.closed = True


class FakeClients:
    """A :class:`~shared.runtime.factories.ClientFactory` of in-memory clients."""

    def __init__(self, topic: str, config: dict[str, dict[str, Any]] | None = None) -> None:
        self.consumer_ = FakeConsumer(topic)
        self.producer_ = FakeProducer()
        self.config = config or {}
        self.readers: list[FakeConfigReader] = []
        self.created: TopicSpecs = {}
        self.restored: list[list[int]] = []
        self.on_error: ErrorCallback | None = None

    def consumer(self, client_id: str, group_id: str, overrides: dict[str, Any], on_error: ErrorCallback,
                 on_stats: StatsCallback) -> FakeConsumer:
        self.on_error = on_error
        return self.consumer_

    def producer(self, client_id: str, overrides: dict[str, Any], on_error: ErrorCallback) -> FakeProducer:
        return self.producer_

    def restore(self, changelog: str, partitions: Iterable[int], store: StateStore,
                on_progress: Callable[[], None]) -> int:
        """Replays what the fake producer delivered to ``changelog``, like the broker's compacted topic."""
        wanted = sorted(partitions)
        self.restored.append(wanted)
        for partition in wanted:
            records = [(r.key, r.value) for r in self.producer_.delivered
                       if r.topic == changelog and r.partition == partition]
            store.apply_changelog(partition, records)
        return len(wanted)

    def topic_partitions(self, topic: str) -> int | None:
        return 4

    def ensure_topics(self, specs: TopicSpecs) -> None:
        self.created.update(specs)

    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """What the brokers hold: each partition's log end (a frozen fetch does not hide it)."""
        return {p: len(self.consumer_.log[p]) for p in partitions}

    def config_reader(self, topic: str, client_id: str) -> FakeConfigReader:
        reader = FakeConfigReader(topic, self.config)
        self.readers.append(reader)
        return reader
