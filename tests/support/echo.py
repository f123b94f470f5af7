"""Settings and records for tests that run the echo service against a broker."""

from __future__ import annotations

import json

from shared.runtime.echo import EchoSettings
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings


def echo_settings(bootstrap: str, topic: str, group: str, **runtime: object) -> EchoSettings:
    """Echo settings reading ``topic`` and writing ``<topic>.out``; ``runtime`` overrides RuntimeSettings fields."""
    return EchoSettings(
        input_topic=topic,
        output_topic=f"{topic}.out",
        group_id=group,
        changelog_topic=f"{topic}.changelog",
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        metrics=MetricsSettings(host="127.0.0.1", port=0),
        runtime=RuntimeSettings.model_validate({"session_timeout_ms": 6000, **runtime}),
    )


def good(i: int, keys: int = 50) -> tuple[bytes, bytes]:
    """A valid echo record keyed ``u<i % keys>``."""
    key = f"u{i % keys}"
    return key.encode(), json.dumps({"id": key, "value": float(i)}).encode()
