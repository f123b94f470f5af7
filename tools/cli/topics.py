"""``shopstream topics create``: every topic a deployment needs, idempotently."""

from __future__ import annotations

import argparse
from typing import Any

from services.registry import SHOP_SERVICES, load_service
from shared.settings import KafkaSettings

COMPACT = {"cleanup.policy": "compact"}


def register(sub: Any) -> None:
    parser = sub.add_parser("topics", help="manage the Kafka topics a deployment needs")
    topic_sub = parser.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topic_sub.add_parser(
        "create",
        help="create inputs, outputs, DLQs, changelogs and config topics (existing ones are kept)",
    )
    create.add_argument("--bootstrap-servers", help="overrides each service's kafka.bootstrap_servers")
    create.add_argument("--partitions", type=int, default=8, help="partitions per topic (default 8)")
    create.add_argument("--services", nargs="+", default=list(SHOP_SERVICES), choices=[*SHOP_SERVICES, "echo"])
    create.set_defaults(handler=run_create)


def deployment_topics(services: list[str], partitions: int) -> dict[str, tuple[int, dict[str, str]]]:
    """name → (partitions, config) for every topic the given services read or write."""
    topics: dict[str, tuple[int, dict[str, str]]] = {}
    for name in services:
        spec = load_service(name)
        settings = spec.settings_class()
        scorer = spec.create_scorer(settings)
        for topic in (settings.input_topic, settings.output_topic, settings.resolved_dlq_topic):
            topics[topic] = (partitions, {})
        for topic in scorer.extra_output_topics():
            topics[topic] = (partitions, {})
        for topic in scorer.config_topics():
            topics[topic] = (1, COMPACT)
        if scorer.stateful:
            topics[settings.resolved_changelog_topic] = (partitions, COMPACT)
    return topics


def run_create(args: argparse.Namespace) -> int:
    from shared.runtime.restore import ensure_topics

    topics = deployment_topics(args.services, args.partitions)
    first = load_service(args.services[0]).settings_class()
    kafka = first.kafka
    if args.bootstrap_servers:
        kafka = KafkaSettings(**{**kafka.model_dump(), "bootstrap_servers": args.bootstrap_servers})
    ensure_topics(kafka, topics)
    for name, (partitions, config) in sorted(topics.items()):
        print(f"{name}\tpartitions={partitions}\t{','.join(f'{k}={v}' for k, v in config.items()) or '-'}")
    return 0
