"""``shopstream topics create``: every topic a deployment needs, idempotently."""

from __future__ import annotations

import argparse
from typing import Any

from services.registry import SERVICE_MODULES, SHOP_SERVICES, load_service
from shared.runtime.topics import TopicSpecs, service_topics
from shared.settings import KafkaSettings
from tools.cli.common import require_reachable


def register(sub: Any) -> None:
    parser = sub.add_parser("topics", help="manage the Kafka topics a deployment needs")
    topic_sub = parser.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topic_sub.add_parser(
        "create",
        help="create inputs, outputs, DLQs, changelogs and config topics (existing ones are kept)",
    )
    create.add_argument("--bootstrap-servers", "-b", help="overrides each service's kafka.bootstrap_servers")
    create.add_argument("--partitions", type=int, default=8, help="partitions per topic (default 8)")
    create.add_argument("--services", nargs="+", default=list(SHOP_SERVICES), choices=list(SERVICE_MODULES))
    create.set_defaults(handler=run_create)


def deployment_topics(services: list[str], partitions: int) -> TopicSpecs:
    """name → (partitions, config) for every topic the given services read or write.

    Each service's list comes from :func:`shared.runtime.topics.service_topics`, the one the
    runtime creates its own topics from, so the two never disagree.
    """
    topics: TopicSpecs = {}
    for name in services:
        spec = load_service(name)
        settings = spec.settings_class()
        topics.update(service_topics(settings, spec.create_scorer(settings), partitions))
    return topics


def run_create(args: argparse.Namespace) -> int:
    from shared.runtime.restore import ensure_topics

    topics = deployment_topics(args.services, args.partitions)
    first = load_service(args.services[0]).settings_class()
    kafka = first.kafka
    if args.bootstrap_servers:
        kafka = KafkaSettings(**{**kafka.model_dump(), "bootstrap_servers": args.bootstrap_servers})
    require_reachable(kafka)
    ensure_topics(kafka, topics)
    for name, (partitions, config) in sorted(topics.items()):
        print(f"{name}\tpartitions={partitions}\t{','.join(f'{k}={v}' for k, v in config.items()) or '-'}")
    return 0
