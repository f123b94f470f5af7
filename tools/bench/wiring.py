"""Benchmark topics, and the settings that point a service at them.

Every contestant (I/O limit, batched plain loop, service, naive-sync, peer) reads the same
pre-filled input topic and writes to its own fresh output topics. The main output and the dead-letter topic are
created with ``message.timestamp.type=LogAppendTime`` so throughput and latency come from the
broker's clock. Every other ``*_topic`` setting of the service (forecasts, alerts, changelog)
is renamed too, so a benchmark never writes to a real topic; config topics are switched off.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.runtime.restore import ensure_topics
from shared.runtime.topics import CHANGELOG
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"

SERVICE_STREAMS = {"recommendation": "clickstream", "ad_ctr": "ads", "pricing": "pricing", "fraud": "payments",
                   "support": "support"}
"""The simulated stream each shop service reads."""


def new_topic(kafka: KafkaSettings, prefix: str, partitions: int, config: Mapping[str, str] | None = None) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, {name: (partitions, dict(config or {}))})
    return name


def topic_fields(service: str) -> dict[str, str | None]:
    """The service's ``*_topic`` settings and their defaults."""
    from services.registry import load_service

    fields = load_service(service).settings_class.model_fields
    return {name: f.default for name, f in fields.items() if name.endswith("_topic")}


def bench_topics(service: str, source: str, sink: str) -> dict[str, str]:
    """Settings (field → topic) that read ``source`` and write ``sink`` and its siblings only."""
    topics: dict[str, str] = {}
    for name, default in topic_fields(service).items():
        if name == "input_topic":
            topics[name] = source
        elif name == "output_topic":
            topics[name] = sink
        elif name == "dlq_topic":
            topics[name] = f"{sink}.dlq"
        elif name.startswith("config"):
            if default is not None:
                topics[name] = ""  # falsy: the scorer serves with static defaults
        else:
            topics[name] = f"{sink}.{name.removesuffix('_topic')}"
    return topics


@dataclass(frozen=True)
class Wiring:
    """One contestant's topics: the shared input, its own (LogAppendTime) outputs."""

    source: str
    sink: str
    topics: dict[str, str]
    partitions: int = 1
    """Of the input topic, and of every output topic created for it."""

    @property
    def dlq(self) -> str:
        return self.topics.get("dlq_topic", f"{self.sink}.dlq")

    @property
    def timed_topics(self) -> list[str]:
        """Scores plus dead letters: every input event ends up in one of them."""
        return [self.sink, self.dlq]

    def env(self) -> dict[str, str]:
        """The settings as env vars without the service prefix (``ServiceProcess`` adds it)."""
        return {name.upper(): topic for name, topic in self.topics.items()}


def wire(kafka: KafkaSettings, service: str, source: str, partitions: int, tag: str) -> Wiring:
    """Create fresh LogAppendTime output and DLQ topics for one contestant reading ``source``."""
    sink = new_topic(kafka, tag, partitions, APPEND_TIME)
    topics = bench_topics(service, source, sink)
    ensure_topics(kafka, {topics["dlq_topic"]: (partitions, APPEND_TIME)})
    return Wiring(source, sink, topics, partitions)


def ensure_outputs(kafka: KafkaSettings, wiring: Wiring, roles: Iterable[str]) -> None:
    """Create a loop's other output topics (``forecast_topic``, ``changelog_topic``...) as the
    service creates its own at start: the input's partition count, the changelog compacted."""
    specs = {wiring.topics[role]: (wiring.partitions, dict(CHANGELOG) if role == "changelog_topic" else {})
             for role in roles if role not in ("input_topic", "output_topic", "dlq_topic") and wiring.topics.get(role)}
    if specs:
        ensure_topics(kafka, specs)


def batch_size(service: str, extra_env: Mapping[str, str] | None = None) -> int:
    """The service's max batch size as the benchmark runs it (its settings, env and ``extra_env``)."""
    override = (extra_env or {}).get("RUNTIME__MAX_BATCH_SIZE")
    if override:
        return int(override)
    from services.registry import load_service

    return load_service(service).settings_class(models_dir=MODELS_DIR).runtime.max_batch_size


def service_env(kafka: KafkaSettings, wiring: Wiring, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Everything ``ServiceProcess`` needs besides the topics: broker, group, models."""
    return {**wiring.env(), "GROUP_ID": f"bench-{uuid.uuid4().hex}",
            "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "MODELS_DIR": str(MODELS_DIR), **(extra or {})}
