"""Settings of the support service (env prefix ``SHOPSTREAM_SUPPORT_``).

``SHOPSTREAM_SUPPORT_ESCALATION_THRESHOLD=0.6`` or ``SHOPSTREAM_SUPPORT_REPEAT_COUNT=2``, for
example. The intent → queue map can also be changed at run time on the config topic (key
``queues``, see :mod:`services.support.queues`).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.support.queues import DEFAULT_QUEUE, DEFAULT_QUEUES
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


class SupportSettings(ServiceSettings):
    """Routing, escalation and batching of the support-intent scorer."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_SUPPORT_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "support"
    input_topic: str = "support.messages"
    output_topic: str = "support.intents"
    escalations_topic: str = "support.escalations"
    """Every escalated message is also written here, for the people who take them."""
    config_topic: str | None = "support.config"
    """Compacted topic of run-time routing: key ``queues`` overrides entries of ``queues`` below."""
    model_name: str = "support"
    queues: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_QUEUES))
    """Intent → queue. Intents missing here go to ``default_queue``."""
    default_queue: str = Field(DEFAULT_QUEUE, min_length=1, max_length=64)
    escalation_threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Escalate (``low_confidence``) when the top intent's probability is below this. ``None`` takes
    the serving version's ``escalation_threshold``: chosen on validation data so that the messages
    it answers reach the version's ``threshold_target_accuracy``."""
    repeat_count: int = Field(3, ge=2, le=1000)
    """Escalate (``repeated_problem``) the message that makes this many about one problem within the window."""
    repeat_window_s: int = Field(48 * 3600, ge=1)
    """How far back, in event time, earlier messages count as the same problem coming back."""
    repeat_key: Literal["queue", "intent"] = "queue"
    """What "the same problem" means: the same queue (the default: robust to the model wavering
    between sibling intents such as ``card_not_working`` and ``declined_card_payment``) or the
    exact same intent."""
    max_kept_per_customer: int = Field(20, ge=1, le=1000)
    """Recent messages remembered per customer (the newest; older ones also leave with the window)."""
    max_rows_per_call: int = Field(256, ge=1, le=65536)
    """Messages per graph call at most; a batch of similar lengths larger than this is split."""
    length_buckets: bool = True
    """Run the batch in groups of similar token lengths (less padding) rather than one padded call."""
