"""The harness runs a real Kafka: groups, commits, transactions and a broker crash behave as Kafka promises."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin._listoffsets import OffsetSpec

from tests.support.factories import BrokerFactory, GroupIdFactory, TopicFactory
from tools.broker.kafka import KafkaCluster
from tools.broker.kafka.admin import admin_client, create_topics

pytestmark = pytest.mark.integration


def _consumer(bootstrap: str, **extra: object) -> Consumer:
    config = {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
              "auto.offset.reset": "earliest", "enable.auto.commit": False} | extra
    return Consumer(config)


def _read_all(bootstrap: str, topic: str, partitions: int, **extra: object) -> list[bytes]:
    """Every value of ``topic`` from the beginning up to the end seen now (the LSO when read_committed)."""
    consumer = _consumer(bootstrap, **{"enable.partition.eof": True} | extra)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    while len(at_end) < partitions and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1.0):
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition() or 0)
            else:
                assert error is None, error
                values.append(msg.value() or b"")
    consumer.close()
    assert len(at_end) == partitions, f"only partitions {sorted(at_end)} reached their end"
    return values


def test_ten_thousand_keyed_messages_keep_key_order_and_commits_reach_the_end(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic, partitions, keys, per_key = topic_factory(partitions=4), 4, 50, 200
    # Idempotence keeps per-partition order even when a batch is retried (e.g. NOT_LEADER right after creation).
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i in range(keys * per_key):
        producer.produce(topic, key=f"user-{i % keys}", value=str(i // keys))
    assert producer.flush(30) == 0

    group = group_id_factory()
    consumer = _consumer(kafka_bootstrap, **{"group.id": group})
    consumer.subscribe([topic])
    received: dict[str, list[int]] = defaultdict(list)
    deadline = time.monotonic() + 90
    while sum(map(len, received.values())) < keys * per_key and time.monotonic() < deadline:
        batch = consumer.consume(500, timeout=1.0)
        for msg in batch:
            assert msg.error() is None, msg.error()
            received[(msg.key() or b"").decode()].append(int(msg.value() or b"-1"))
        if batch:
            consumer.commit(asynchronous=False)
    consumer.close()

    assert sum(map(len, received.values())) == keys * per_key
    out_of_order = [key for key, seqs in received.items() if seqs != list(range(per_key))]
    assert out_of_order == [], f"per-key order broken for {out_of_order}"
    admin = admin_client(kafka_bootstrap)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    request = [ConsumerGroupTopicPartitions(group, tps)]
    committed = admin.list_consumer_group_offsets(request)[group].result(30).topic_partitions
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}).items()  # type: ignore[no-untyped-call]
    end_offsets = {tp.partition: future.result(30).offset for tp, future in ends}
    assert {tp.partition: tp.offset for tp in committed} == end_offsets
    assert sum(end_offsets.values()) == keys * per_key


def test_read_committed_sees_committed_transactions_and_never_aborted_ones(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    producer.init_transactions(60)

    def transaction(label: str, count: int, commit: bool) -> list[bytes]:
        values = [f"{label}-{i}".encode() for i in range(count)]
        producer.begin_transaction()
        for value in values:
            producer.produce(topic, value=value)
        assert producer.flush(30) == 0  # on the log before the abort marker, so read_uncommitted sees them
        (producer.commit_transaction if commit else producer.abort_transaction)(30)
        return values

    first = transaction("committed-a", 100, commit=True)
    aborted = transaction("aborted", 50, commit=False)
    last = transaction("committed-b", 20, commit=True)

    assert _read_all(kafka_bootstrap, topic, 1, **{"isolation.level": "read_committed"}) == first + last
    assert _read_all(kafka_bootstrap, topic, 1, **{"isolation.level": "read_uncommitted"}) == first + aborted + last


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_idempotent_acks_all_producer_loses_and_duplicates_nothing_when_a_broker_is_killed(
    kafka_cluster: KafkaCluster,
) -> None:
    bootstrap, total, partitions = kafka_cluster.bootstrap_servers, 20_000, 6
    topic = f"fault-{uuid.uuid4().hex[:12]}"
    create_topics(bootstrap, {topic: partitions})  # RF 3, min ISR 2 from the cluster defaults
    victim = kafka_cluster.leader_of(topic, 0)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "delivery.timeout.ms": 120_000})
    acked: list[int] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked.append(int(msg.value() or b"-1"))

    def send(start: int, stop: int) -> None:
        for i in range(start, stop):
            producer.produce(topic, key=str(i % 997), value=str(i), on_delivery=on_delivery)
            if i % 500 == 0:
                producer.poll(0.05)  # spread the sends over the outage, not one burst

    send(0, 5_000)
    kafka_cluster.kill(victim)  # SIGKILL while the producer keeps sending
    send(5_000, 12_000)
    _wait_for(lambda: kafka_cluster.leader_of(topic, 0) not in (victim, -1), 60, "a new leader of partition 0")
    kafka_cluster.start(victim)  # back on the same data dirs
    send(12_000, total)
    assert producer.flush(120) == 0
    assert errors == []
    assert sorted(acked) == list(range(total))

    def victim_in_every_isr() -> bool:
        topic_md = admin_client(bootstrap).list_topics(topic, timeout=10).topics[topic]
        return all(victim in p.isrs for p in topic_md.partitions.values())

    _wait_for(victim_in_every_isr, 60, f"node {victim} to rejoin every ISR")
    counts = Counter(int(v) for v in _read_all(bootstrap, topic, partitions))
    assert sorted(counts) == list(range(total))  # no loss
    assert max(counts.values()) == 1  # no duplicates


@pytest.mark.slow
def test_a_broker_restarted_on_its_data_dir_keeps_its_records(tmp_path: Path, broker_factory: BrokerFactory) -> None:
    broker = broker_factory(data_dir=tmp_path / "kafka")
    bootstrap = broker.bootstrap_servers
    create_topics(bootstrap, {"kept": 2})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(500):
        producer.produce("kept", key=str(i), value=str(i))
    assert producer.flush(30) == 0
    broker.stop()
    assert not broker.running
    broker.start()
    assert broker.bootstrap_servers == bootstrap  # same port: clients need no new config
    assert sorted(int(v) for v in _read_all(bootstrap, "kept", 2)) == list(range(500))
