"""Reading and writing the rollout topics: decisions, the monitor's evidence, rollout plans.

Each is a compacted topic read whole (:class:`~shared.kafka.config_topic.CompactedTopicReader`):
``shopstream.model-events`` (key = service), ``shopstream.live-quality`` (key =
``service/version``) and the service's config topic (key ``rollout``). A decision is built from
the previous one, so the record compaction keeps is the service's whole state.
"""

from __future__ import annotations

import getpass
import json
import socket
import time
import uuid
from collections import Counter

from confluent_kafka import TopicPartition

from shared.errors import BrokerUnavailable
from shared.kafka.clients import make_consumer, make_producer
from shared.kafka.config_topic import CompactedTopicReader
from shared.runtime.restore import ensure_topics
from shared.runtime.topics import COMPACT, CONFIG_TOPIC_PARTITIONS
from shared.schemas import headers as h
from shared.schemas.rollout import Decision, Evidence, ModelEvent, QualitySnapshot, RolloutPlan
from shared.settings import KafkaSettings

READ_TIMEOUT_S = 15.0
RECENT_PER_PARTITION = 50
"""Records read from the end of each partition of a service's output to see which version serves."""
MAX_REPLACED = 64


def requested_by() -> str:
    """Who asks, for the record: the user and the host the command runs on."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def read_topic(kafka: KafkaSettings, topic: str) -> dict[str, dict[str, object]]:
    """Every key's latest value of a compacted topic (empty if the topic does not exist)."""
    reader = CompactedTopicReader(kafka, topic, "shopstream-models")
    reader.start()
    try:
        if not reader.wait_caught_up(READ_TIMEOUT_S):
            raise BrokerUnavailable(f"could not read {topic} to its end within {READ_TIMEOUT_S:g} s")
        return reader.snapshot()
    finally:
        reader.close()


def served_versions(kafka: KafkaSettings, topic: str, per_partition: int = RECENT_PER_PARTITION) -> Counter[str]:
    """Model versions named by the lineage headers of the last records of each partition of ``topic``:
    what the instances serve now, whatever their settings say."""
    consumer = make_consumer(kafka, "shopstream-models", f"shopstream-models.{uuid.uuid4().hex[:12]}")
    seen: Counter[str] = Counter()
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return seen
        ends: dict[int, int] = {}
        starts = []
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, max(low, high - per_partition)))
        consumer.assign(starts)
        deadline, quiet = time.monotonic() + READ_TIMEOUT_S, 0
        # The records are on the brokers already: once something was read, two empty polls in a row
        # mean the end (an exactly-once topic's last offset is a transaction marker, never delivered).
        while ends and time.monotonic() < deadline and quiet < 2:
            messages = consumer.consume(500, timeout=0.5)
            quiet = quiet + 1 if not messages and seen else 0
            for msg in messages:
                version = dict(msg.headers() or []).get(h.MODEL_VERSION) if msg.error() is None else None
                if version:
                    seen[version.decode() if isinstance(version, bytes) else str(version)] += 1
                if (msg.offset() or 0) + 1 >= ends.get(msg.partition() or 0, 0):
                    ends.pop(msg.partition() or 0, None)
        return seen
    finally:
        consumer.close()


def latest_decision(kafka: KafkaSettings, topic: str, service: str) -> ModelEvent | None:
    raw = read_topic(kafka, topic).get(service)
    return None if raw is None else ModelEvent.model_validate(raw)


def snapshots(kafka: KafkaSettings, topic: str, service: str) -> dict[str, QualitySnapshot]:
    """version → the monitor's latest measures of it."""
    out: dict[str, QualitySnapshot] = {}
    for key, raw in read_topic(kafka, topic).items():
        if key.startswith(f"{service}/"):
            snapshot = QualitySnapshot.model_validate(raw)
            out[snapshot.model_version] = snapshot
    return out


def next_event(previous: ModelEvent | None, service: str, decision: Decision, version: str, live_version: str,
               *, replaced: tuple[str, ...], forced: bool, evidence: Evidence | None, who: str) -> ModelEvent:
    return ModelEvent(service=service, decision=decision, version=version, live_version=live_version,
                      replaced=replaced[-MAX_REPLACED:], forced=forced, evidence=evidence, requested_by=who,
                      at_ms=int(time.time() * 1000), sequence=(previous.sequence if previous else 0) + 1)


def publish(kafka: KafkaSettings, topic: str, key: str, value: dict[str, object] | None) -> None:
    """Write one record (``None``: a tombstone) and wait until the brokers have it."""
    # compacted, on one partition like a service's config topic: its records keep their order
    ensure_topics(kafka, {topic: (CONFIG_TOPIC_PARTITIONS, dict(COMPACT))})
    producer = make_producer(kafka, "shopstream-models")
    errors: list[str] = []
    producer.produce(topic, key=key.encode(), value=None if value is None else json.dumps(value).encode(),
                     on_delivery=lambda err, _msg: errors.append(str(err)) if err is not None else None)
    if producer.flush(30) or errors:
        raise BrokerUnavailable(f"could not write {key} to {topic}: {errors or 'not acknowledged within 30 s'}")


def publish_event(kafka: KafkaSettings, topic: str, event: ModelEvent) -> None:
    publish(kafka, topic, event.service, event.model_dump(mode="json"))


def publish_plan(kafka: KafkaSettings, config_topic: str, plan: RolloutPlan) -> None:
    publish(kafka, config_topic, "rollout", plan.model_dump(mode="json"))
