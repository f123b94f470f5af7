"""Settings for every shopstream process.

Only this module reads the environment (through pydantic-settings). Each service
subclasses :class:`ServiceSettings` with its own env prefix, e.g. ``SHOPSTREAM_FRAUD_``;
nested fields use ``__``: ``SHOPSTREAM_FRAUD_KAFKA__BOOTSTRAP_SERVERS``. Secrets may also
come from files in ``secrets_dir`` (a mounted Kubernetes Secret), never from code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
DeliveryMode = Literal["at_least_once", "exactly_once"]
ExecutionProvider = Literal["tensorrt", "cuda", "cpu"]
DEFAULT_PROVIDERS: tuple[ExecutionProvider, ...] = ("tensorrt", "cuda", "cpu")


class KafkaSettings(BaseModel):
    """How to reach the Kafka cluster."""

    model_config = ConfigDict(hide_input_in_errors=True)  # errors must never quote a password

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list."""
    client_id: str | None = None
    """Client id reported to the broker; defaults to the service name."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    """CA bundle that signed the broker's certificate."""
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification: bool = True
    """Check the broker's hostname against its certificate."""
    extra: dict[str, str] = Field(default_factory=dict)
    """Extra librdkafka properties, applied last (e.g. ``{"socket.keepalive.enable": "true"}``)."""

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError("SASL protocols need sasl_mechanism, sasl_username and sasl_password")
        return self

    def client_config(self, client_id: str) -> dict[str, str]:
        """A fresh librdkafka config dict (the caller may mutate its own copy)."""
        config: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id or client_id,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        optional_paths = {
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        config.update({key: str(path) for key, path in optional_paths.items() if path is not None})
        if self.ssl_key_password:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL") and not self.ssl_endpoint_identification:
            config["ssl.endpoint.identification.algorithm"] = "none"
        config.update(self.extra)
        return config


class RuntimeSettings(BaseModel):
    """How the streaming loop batches, delivers and protects itself."""

    delivery: DeliveryMode = "at_least_once"
    """``exactly_once`` uses Kafka transactions; readers must use ``read_committed``."""
    max_batch_size: int = Field(256, ge=1, le=65536)
    """Flush a micro-batch once it holds this many valid events."""
    max_wait_ms: int = Field(20, ge=0)
    """Flush a micro-batch once its first event has waited this long."""
    latency_budget_ms: int = Field(500, ge=1)
    """Event time → score budget; a batch flushes early so its oldest event can meet it."""
    inference_estimate_ms: float = Field(5.0, ge=0)
    """Initial guess of a batch's scoring time, refined from measurements."""
    commit_interval_ms: int = Field(200, ge=0)
    """How often acknowledged offsets are committed in at-least-once mode."""
    max_message_bytes: int = Field(1_000_000, ge=1)
    """Larger input records are dead-lettered without being parsed."""
    max_inflight_messages: int = Field(50_000, ge=1)
    """Pause consumption while more produced messages than this await acknowledgement."""
    shutdown_deadline_s: float = Field(20.0, gt=0)
    """SIGTERM → drained, committed and exited within this many seconds."""
    retry_initial_backoff_s: float = Field(0.2, gt=0)
    retry_max_backoff_s: float = Field(5.0, gt=0)
    split_after_failures: int = Field(3, ge=1)
    """A batch the scorer raised on this many times in a row is halved, part by part, to find the
    record that trips it (a scorer that fails on everything keeps failing on every part)."""
    poison_after_failures: int = Field(3, ge=1)
    """A record the scorer raised on this many times alone is dead-lettered (``scorer_error``) if the
    scorer works for other records; if it fails on everything, nothing is dead-lettered."""
    session_timeout_ms: int = Field(10_000, ge=1000)
    stall_after_s: float = Field(60.0, gt=0)
    """A partition with records waiting (lag > 0) that made no progress for this long, while the
    loop turns and consumption is not paused, is reported stalled: not ready, counted, alerted."""
    statistics_interval_ms: int = Field(1000, ge=0)
    """librdkafka statistics period; consumer lag metrics come from it (0 disables)."""
    dlq_message_max_chars: int = Field(500, ge=16)
    """Error messages in DLQ headers are cut to this length."""
    transaction_timeout_ms: int = Field(15_000, ge=1000)
    """Exactly-once: how long a crashed instance's open transaction can block readers."""
    revoke_flush_timeout_s: float = Field(10.0, gt=0)
    """On revoke, wait this long for acknowledgements before committing what is done."""
    max_state_keys_per_partition: int = Field(1_000_000, ge=1)
    """Least recently used keys beyond this are evicted (memory stays bounded)."""
    max_state_bytes_per_partition: int = Field(256 * 1024 * 1024, ge=1)
    """Least recently used keys are also evicted while a partition's state (its changelog records:
    keys plus encoded values) is larger than this, so values that keep growing stay bounded too."""
    gc_full_interval_s: float = Field(600.0, gt=0)
    """The loop collects young garbage after each batch; a full collection of the whole heap (a pause
    that grows with the state held) runs this often (see ``shared.runtime.collector``)."""
    create_topics: bool = True
    """Create missing output, DLQ and changelog topics at start (needs the CREATE ACL)."""
    default_partitions: int = Field(8, ge=1)
    """Partitions for topics created when the input topic does not exist yet."""


class MetricsSettings(BaseModel):
    host: str = "0.0.0.0"
    """Address the /metrics, /healthz and /readyz endpoint binds to."""
    port: int = Field(9100, ge=0, le=65535)
    """0 picks a free port (tests)."""


class ServiceSettings(BaseSettings):
    """Base settings shared by every service; subclasses set ``env_prefix`` and defaults."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPSTREAM_",
        env_nested_delimiter="__",
        # a secrets dir holds one file per setting, named like the env var:
        # ``<secrets_dir>/SHOPSTREAM_FRAUD_KAFKA__SASL_PASSWORD``
        secrets_nested_delimiter="__",
        # validation errors would otherwise quote the input (a password included) in messages
        hide_input_in_errors=True,
        extra="ignore",
    )

    service_name: str = "service"
    input_topic: str = "input"
    output_topic: str = "output"
    dlq_topic: str | None = None
    """Defaults to ``<input_topic>.dlq``."""
    group_id: str | None = None
    """Defaults to ``shopstream.<service_name>``."""
    changelog_topic: str | None = None
    """Defaults to ``shopstream.<service_name>.state-changelog``; used only by stateful scorers."""
    config_topic: str | None = None
    """Compacted topic of operator settings (key → JSON object) that the runtime follows and hands
    the scorer as ``LoadContext.config``; ``None``: no config topic."""
    feedback_topic: str | None = None
    """Also publish each main output, wrapped as a ``prediction`` record, to this topic for the
    live-quality monitor (:mod:`shared.schemas.feedback`); ``None``: no copy."""
    model_events_topic: str | None = "shopstream.model-events"
    """Compacted topic of model decisions (``shopstream models promote`` / ``rollback``) that every
    instance of a model-serving service follows; ``None``: decisions are not followed."""
    config_wait_s: float = Field(5.0, ge=0.0)
    """At start, wait this long for the config topic to be read to its end before scoring."""
    instance_id: str | None = None
    """Stable per-replica id (e.g. the pod name); names the transactional id in exactly-once mode."""
    models_dir: Path = Path("models")
    model_version: str | None = None
    """Pin a model version; ``None`` serves the latest and hot-swaps to newer ones."""
    model_variant: Literal["fp32", "fp16", "int8"] = "fp32"
    """Which exported variant to serve; fp16/int8 are written by ``shopstream export``."""
    model_poll_interval_s: float = Field(10.0, gt=0)
    execution_providers: list[ExecutionProvider] = Field(default_factory=lambda: list(DEFAULT_PROVIDERS))
    """Tried in order; the first one ONNX Runtime can use wins."""
    intra_op_threads: int = Field(0, ge=0)
    """ONNX Runtime CPU threads; 0 lets ORT decide."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log_json: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the plain secrets source reads top-level fields only; nested ones (KAFKA__SASL_PASSWORD)
        # need this one, which reads the ``--secrets-dir`` given to the constructor
        return init_settings, env_settings, dotenv_settings, NestedSecretsSettingsSource(file_secret_settings)

    @property
    def resolved_dlq_topic(self) -> str:
        return self.dlq_topic or f"{self.input_topic}.dlq"

    @property
    def resolved_group_id(self) -> str:
        return self.group_id or f"shopstream.{self.service_name}"

    @property
    def resolved_changelog_topic(self) -> str:
        return self.changelog_topic or f"shopstream.{self.service_name}.state-changelog"
