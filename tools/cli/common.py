"""Arguments and helpers shared by the CLI's Kafka-facing commands."""

from __future__ import annotations

import argparse
from typing import Any

from shared.errors import ConfigError
from shared.settings import KafkaSettings, ServiceSettings


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
