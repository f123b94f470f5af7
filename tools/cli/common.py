"""Arguments and helpers shared by the CLI's Kafka-facing commands."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from shared.errors import BrokerUnavailable, ConfigError
from shared.settings import KafkaSettings, ServiceSettings

REACH_TIMEOUT_S = 5.0
"""How long a command waits for the brokers' first metadata answer before it gives up."""
_quiet = logging.getLogger(__name__ + ".reachability")
_quiet.propagate = False
_quiet.addHandler(logging.NullHandler())


class CliKafkaSettings(ServiceSettings):
    """Kafka settings for CLI tools: ``SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS`` and friends."""


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers", "-b",
        help="Kafka bootstrap servers (default: SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )


def kafka_from_args(args: argparse.Namespace) -> KafkaSettings:
    kafka = CliKafkaSettings().kafka
    if getattr(args, "bootstrap_servers", None):
        kafka = KafkaSettings(**{**kafka.model_dump(), "bootstrap_servers": args.bootstrap_servers})
    return kafka


def require_reachable(kafka: KafkaSettings, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Ask the brokers for metadata once; raise :class:`BrokerUnavailable` naming the address and why.

    Called before a command builds its producer or consumer: librdkafka retries an unreachable
    broker forever and logs every attempt, so without this a command would hang or bury the
    reason in log lines. The probe's own log lines are dropped; its first error is the reason.
    """
    errors: list[KafkaError] = []
    config: dict[str, str | int | float | bool] = {**kafka.client_config("shopstream-cli-probe")}
    admin = AdminClient(config, error_cb=errors.append, logger=_quiet)
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serves the error callbacks that say why
        raise BrokerUnavailable(f"cannot reach Kafka at {kafka.bootstrap_servers} within {timeout_s:g} s: "
                                f"{_reason(errors, exc)}") from exc


def _reason(errors: list[KafkaError], exc: KafkaException) -> str:
    specific = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
    if not specific:
        return str(exc.args[0].str() if exc.args else exc)
    text = str(specific[0].str())
    # "host:port/bootstrap: Connect to ... failed: Connection refused (after 0ms in state CONNECT)"
    text = text.split(": ", 1)[1] if "/bootstrap: " in text else text
    return text.split(" (after ", 1)[0]


def positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def subparsers(parser: argparse.ArgumentParser, dest: str) -> Any:
    return parser.add_subparsers(dest=dest, required=True, metavar="ACTION")
