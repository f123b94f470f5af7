"""Read the live service's outputs of a replayed range, for :class:`~tools.replay.compare.Comparison`.

The live outputs of a range are not at known offsets of the output topic, but none was written
before its input record: reading starts at the range's earliest input timestamp (less a margin
for the producers' clocks) and stops at the topic's end, or as soon as every replayed output has
met its live one. The reader's group is the replay's own with ``.compare`` appended; it commits
nothing.
"""

from __future__ import annotations

from shared.errors import ConfigError
from shared.kafka.clients import make_consumer
from shared.runtime.restore import topic_partitions
from shared.settings import ServiceSettings
from tools.replay.compare import Comparison
from tools.replay.ranges import AtOffset, AtTime, Bound, ConsumerLookup, resolve
from tools.replay.reader import READER_CONFIG, RangeReader

CLOCK_MARGIN_MS = 10 * 60_000
"""How much earlier than its input record a live output's timestamp may be (skewed clocks)."""


def require_topic(settings: ServiceSettings, topic: str) -> None:
    """Checked before a replay starts, so a wrong ``--live-topic`` costs no rescoring."""
    if not topic_partitions(settings.kafka, topic):
        raise ConfigError(f"live output topic {topic} does not exist")


def read_live(settings: ServiceSettings, topic: str, since_ms: int | None, comparison: Comparison,
              group_id: str) -> None:
    """Feed ``comparison`` the outputs on ``topic`` from ``since_ms`` (less the margin) on."""
    consumer = make_consumer(settings.kafka, f"shopstream-replay-{settings.service_name}-compare",
                             f"{group_id}.compare", dict(READER_CONFIG))
    try:
        start: Bound = AtOffset(0) if since_ms is None else AtTime(max(since_ms - CLOCK_MARGIN_MS, 0))
        reader = RangeReader(consumer, topic, resolve(ConsumerLookup(consumer), topic, start),
                             settings.runtime.max_batch_size)
        reader.open()
        while not reader.done and not comparison.complete:
            for msg in reader.read():
                comparison.add_live(msg.headers(), msg.value())
    finally:
        consumer.close()
