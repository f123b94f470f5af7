"""Delivery units and rewinds, on a fake producer: which offsets a failed unit sends the loop back to."""

from __future__ import annotations

from confluent_kafka import KafkaError

from shared.runtime.delivery import AtLeastOnce, OutRecord
from shared.runtime.offsets import DeliveryUnit
from tests.support.fake_kafka import FakeConsumer, FakeProducer


def _publish(delivery: AtLeastOnce, partition: int, offsets: range) -> DeliveryUnit:
    unit = delivery.tracker.open_unit({partition: list(offsets)}, [0] * len(offsets))
    delivery.publish(unit, [OutRecord("out", b"k", b"v", [])], FakeConsumer("in"))
    return unit


def test_a_failed_unit_rewinds_to_the_oldest_unfinished_offset_of_its_partition() -> None:
    """A later unit can fail first (a record refused before it was queued fails at once), while an
    older unit of the same partition still awaits the broker: both must be scored again."""
    producer = FakeProducer(hold=True)
    delivery = AtLeastOnce(producer, "in", lambda unit: None, interval_ms=0)
    _publish(delivery, 1, range(83, 182))  # in flight
    _publish(delivery, 1, range(182, 200))
    _, fail_later = producer.queued[1]
    assert fail_later is not None
    fail_later(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), None)
    assert delivery.take_rewinds().offsets == {1: 83}, "back to the older unit, not to 182"
    assert delivery.tracker.uncommitted() == {}, "nothing of the partition may be committed meanwhile"


def test_a_failed_unit_alone_rewinds_to_its_first_offset() -> None:
    producer = FakeProducer(hold=True)
    delivery = AtLeastOnce(producer, "in", lambda unit: None, interval_ms=0)
    _publish(delivery, 0, range(10, 20))
    _, fail = producer.queued[0]
    assert fail is not None
    fail(KafkaError(KafkaError._MSG_TIMED_OUT), None)
    assert delivery.take_rewinds().offsets == {0: 10}
