"""Kafka header names shared by the runtime, the DLQ tooling and downstream readers.

All header values are UTF-8 strings (numbers in decimal), so any client can read them.
"""

from __future__ import annotations

# Dead-letter headers: set on every record the runtime writes to ``<topic>.dlq``.
ERROR_CLASS = "x-error-class"
"""Exception class name, e.g. ``InvalidEvent``."""
ERROR_REASON = "x-error-reason"
"""Low-cardinality reason code, e.g. ``missing_field`` (see :func:`shared.schemas.base.reason_of`)."""
ERROR_MESSAGE = "x-error-message"
"""Human-readable detail: ``amount: Input should be greater than 0``."""
SOURCE_TOPIC = "x-source-topic"
SOURCE_PARTITION = "x-source-partition"
SOURCE_OFFSET = "x-source-offset"
SERVICE = "x-service"
FAILED_AT = "x-failed-at"
"""When the record was dead-lettered, epoch milliseconds."""

DLQ_HEADERS = (
    ERROR_CLASS,
    ERROR_REASON,
    ERROR_MESSAGE,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    SERVICE,
    FAILED_AT,
)

# Lineage headers: set on every score the runtime produces. Source topic/partition/offset
# reuse the names above.
MODEL_NAME = "x-model-name"
MODEL_VERSION = "x-model-version"
MODEL_SHA256 = "x-model-sha256"
SCHEMA_VERSION = "x-schema-version"
EVENT_TIME_MS = "x-event-time-ms"

LINEAGE_HEADERS = (
    MODEL_NAME,
    MODEL_VERSION,
    MODEL_SHA256,
    SCHEMA_VERSION,
    EVENT_TIME_MS,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
)

DLQ_SUFFIX = ".dlq"
"""A dead-letter topic is the input topic name plus this suffix."""
