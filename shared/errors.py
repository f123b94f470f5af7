"""The project's exception tree: one root, typed subclasses with structured fields."""

from __future__ import annotations


class ShopstreamError(Exception):
    """Root of every error shopstream raises on purpose."""


class ConfigError(ShopstreamError):
    """Settings are missing, inconsistent or refer to something that does not exist."""


class InvalidEvent(ShopstreamError):
    """An input record cannot be decoded or fails validation; it belongs on the DLQ.

    ``reason`` is a short, stable, low-cardinality code (used as a metric label and a
    header); ``detail`` is the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ScoringError(ShopstreamError):
    """The model or scorer failed on a batch: retryable, never a reason to dead-letter."""


class ModelError(ShopstreamError):
    """A model artefact cannot be used."""


class ChecksumMismatch(ModelError):
    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: sha256 {actual} does not match manifest {expected}")
        self.path = path
        self.expected = expected
        self.actual = actual


class ModelSpecMismatch(ModelError):
    """The ONNX graph's inputs or outputs differ from what the scorer expects."""


class ParityError(ModelError):
    """An exported model differs from its torch source by more than the spec's tolerance."""

    def __init__(self, output: str, max_abs_diff: float, atol: float) -> None:
        super().__init__(f"output {output!r}: max |torch - onnx| = {max_abs_diff:.3g} exceeds atol {atol:.3g}")
        self.output = output
        self.max_abs_diff = max_abs_diff
        self.atol = atol


class ConsumerOrphaned(ShopstreamError):
    """The consumer lost its partitions and the group never gave it an assignment again while the
    brokers answered: the process exits so a restart brings a fresh consumer (crash-only)."""


class BrokerUnavailable(ShopstreamError):
    """The Kafka broker could not be reached or started."""

