"""Errors of the embedded broker: a tool's failure, outside the serving library's error tree."""

from __future__ import annotations

from shared.errors import ShopstreamError


class HarnessError(ShopstreamError):
    """The embedded Kafka broker cannot run (missing Java/Maven, failed start)."""
