"""``shopstream replay <service>``: rescore a range of a service's input with a chosen model version.

The work is done in :mod:`tools.replay`; this module parses the options, reads the service's
settings from the environment as ``shopstream serve`` does, and prints the summary and report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from services.registry import SHOP_SERVICES, load_service
from shared.settings import KafkaSettings, ServiceSettings
from tools.cli.common import require_reachable
from tools.cli.serve import load_settings
from tools.replay.progress import BarProgress
from tools.replay.ranges import parse_bound
from tools.replay.runner import ReplayOutcome, ReplayRequest, run_replay


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="rescore a range of a service's input with a chosen model version, to a topic of its own",
        description="Read a range of a service's input topic in a consumer group of the replay's own (the "
        "live group's offsets never move), score it with the service's scorer pinned to --model, and write "
        "the outputs to --to-topic (dead letters to <to-topic>.dlq). Settings come from the environment as "
        "for `shopstream serve`. A stateful scorer starts from empty state; outputs for the scorer's extra "
        "topics are dropped and counted.",
    )
    parser.add_argument("service", choices=sorted(SHOP_SERVICES))
    parser.add_argument("--from", dest="start", required=True, metavar="TIME|OFFSET",
                        help="first record: an ISO-8601 time (2026-12-03T08:00:00Z; UTC if no zone), epoch "
                        "milliseconds (1796284800000ms), an offset for every partition (1200) or per partition "
                        "(0:1200,1:1180)")
    parser.add_argument("--to", dest="end", metavar="TIME|OFFSET",
                        help="end of the range, exclusive, in the same forms (default: the partitions' ends now)")
    parser.add_argument("--model", required=True, metavar="VERSION", help="the model version to score with")
    parser.add_argument("--to-topic", required=True, help="where the replayed outputs go")
    parser.add_argument("--compare", action="store_true",
                        help="join the replayed outputs to the live ones and report how far they agree")
    parser.add_argument("--report", type=Path, metavar="PATH", help="also write the summary (and comparison) as JSON")
    parser.add_argument("--group", help="the replay's consumer group (default: shopstream.replay.<service>.<hex>)")
    parser.add_argument("--input-topic", help="read this topic instead of the service's input topic")
    parser.add_argument("--live-topic", help="the live outputs to compare with (default: the service's output topic)")
    parser.add_argument("--env-file", type=Path, help="a .env file with settings (environment wins)")
    parser.add_argument("--secrets-dir", type=Path, help="a directory of secret files (e.g. a mounted Secret)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--bootstrap-servers", "-b",
                        help="Kafka bootstrap servers (default: the service's, e.g. "
                        "SHOPSTREAM_RECOMMENDATION_KAFKA__BOOTSTRAP_SERVERS)")
    parser.set_defaults(handler=run)


def replay_settings(args: argparse.Namespace) -> ServiceSettings:
    settings = load_settings(args.service, args.env_file, args.secrets_dir)
    update: dict[str, Any] = {}
    if args.input_topic:
        update["input_topic"] = args.input_topic
    if args.bootstrap_servers:
        update["kafka"] = KafkaSettings(**{**settings.kafka.model_dump(), "bootstrap_servers": args.bootstrap_servers})
    return settings.model_copy(update=update)


def run(args: argparse.Namespace) -> int:
    request = ReplayRequest(start=parse_bound(args.start), end=parse_bound(args.end) if args.end else None,
                            model_version=args.model, to_topic=args.to_topic, group_id=args.group)
    settings = replay_settings(args)
    require_reachable(settings.kafka)
    live_topic = (args.live_topic or settings.output_topic) if args.compare else None
    spec = load_service(args.service)
    progress = None if args.quiet else BarProgress(f"replay {args.service} {args.model}")
    outcome = run_replay(settings, spec.create_scorer, request, live_topic=live_topic, progress=progress)
    show(outcome, args.model, live_topic, args.report)
    return 0


def show(outcome: ReplayOutcome, version: str, live_topic: str | None, report: Path | None) -> None:
    summary = outcome.summary
    print(summary.line())
    if summary.stateful:
        print(f"note: {summary.service} keeps state per key and the replay started from empty state (the live "
              "changelog is not read): each key's first outputs in the range may differ from live's")
    if summary.rejected:
        print(f"{summary.rejected} rejected records were written to {summary.to_topic}.dlq")
    if summary.dropped:
        print("dropped (not written to the live extra topics): "
              + ", ".join(f"{topic} {n}" for topic, n in sorted(summary.dropped.items())))
    if outcome.report is not None and live_topic is not None:
        print(outcome.report.table(version, live_topic))
    if report is not None:
        compared = outcome.report.to_json() if outcome.report is not None else None
        report.write_text(json.dumps({"replay": summary.to_json(), "compare": compared}, indent=2) + "\n")
