"""Settings of the live-quality monitor (env prefix ``SHOPSTREAM_MONITOR_``).

``SHOPSTREAM_MONITOR_MAX_WAIT_S=600`` or ``SHOPSTREAM_MONITOR_WINDOW=5000``, for example.
See docs/live-quality.md for what the join waits for and what each measure means.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.schemas.feedback import DEFAULT_FEEDBACK_TOPIC
from shared.schemas.rollout import LIVE_QUALITY_TOPIC
from shared.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    """How long the join waits, how much history each measure covers, how often gauges refresh."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_MONITOR_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "monitor"
    input_topic: str = DEFAULT_FEEDBACK_TOPIC
    output_topic: str = "shop.quality"
    max_wait_s: float = Field(600.0, gt=0)
    """Event time a prediction waits for its outcome (and an outcome for its prediction) before
    it is dropped and counted in ``shopstream_live_unmatched_total``. Must exceed the slowest
    outcome's delay: a real shop's chargebacks take weeks, the demo compresses them to a minute."""
    window: int = Field(5000, ge=10)
    """Joined outcomes per (service, model version) the measures are computed over."""
    refresh_interval_s: float = Field(2.0, ge=0)
    """Least wall time between two recomputations of the gauges (an AUC sorts the window)."""
    top_k: int = Field(10, ge=1, le=100)
    """Recommendation lists are judged on their first ``top_k`` items."""
    coverage_lists: int = Field(1000, ge=1)
    """Warm recommendation lists the catalogue coverage looks back over."""
    catalogue_items: int = Field(5000, ge=1)
    """Catalogue size, the denominator of coverage (the demo shop has 5,000 items)."""
    pending_per_key: int = Field(64, ge=1)
    """Predictions (and early outcomes) held per key; the oldest go first. Bounds one hot key's state."""
    quality_topic: str | None = LIVE_QUALITY_TOPIC
    """Compacted topic of each (service, version)'s current measures (key ``<service>/<version>``),
    the evidence ``shopstream models promote`` judges on; ``None``: not published."""
    snapshot_interval_s: float = Field(5.0, ge=0)
    """Least wall time between two publications of the measures on ``quality_topic``."""
