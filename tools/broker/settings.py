"""Settings of the local Kafka test harness (the only place the harness reads the environment)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HarnessSettings(BaseSettings):
    """Where the harness caches jars and which broker tests talk to.

    Environment: ``SHOPSTREAM_TEST_BOOTSTRAP``, ``SHOPSTREAM_KAFKA_CACHE_DIR``,
    ``SHOPSTREAM_KAFKA_HEAP`` and the standard ``XDG_CACHE_HOME``.
    """

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_", extra="ignore")

    test_bootstrap: str | None = None
    """Run the integration tests against this already running broker instead of starting one."""
    kafka_cache_dir: Path | None = None
    """Where resolved Kafka jars live; default ``$XDG_CACHE_HOME/shopstream/kafka``."""
    xdg_cache_home: Path | None = Field(
        default=None, validation_alias=AliasChoices("XDG_CACHE_HOME", "xdg_cache_home")
    )
    """The user's cache root; ``~/.cache`` when unset."""
    kafka_heap: str = "384m"
    """Maximum JVM heap of each broker started by the harness (``-Xmx``)."""

    def jar_cache_root(self) -> Path:
        """The folder under which each pom's resolved ``lib/`` is cached, keyed by its digest."""
        if self.kafka_cache_dir is not None:
            return self.kafka_cache_dir.expanduser()
        base = self.xdg_cache_home.expanduser() if self.xdg_cache_home else Path.home() / ".cache"
        return base / "shopstream" / "kafka"
