"""``shopstream produce <scenario>``: drive the simulated shop, or replay a real data set, into Kafka."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from shared.schemas.registry import TOPICS
from shared.settings import KafkaSettings
from tools.cli.common import add_bootstrap, fraction, kafka_from_args, positive_float, require, require_reachable
from tools.loadgen.datasets import REPLAY_SCENARIOS, default_data_dir, replay_records, replay_rows
from tools.loadgen.feedback import DEFAULT_DECISIONS_TOPIC, FeedbackPublisher, shop_publisher, with_outcomes
from tools.loadgen.generator import SIM_SCENARIOS, Corrupter, LoadGenerator, sim_records, sim_rows
from tools.loadgen.support import corrupt_message


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "produce",
        help="produce simulated shop events (clickstream, ads, pricing, payments, support or all) or replay a "
        "data set",
        description="Produce events from the simulated shop, or replay a real data set (beauty: Amazon "
        "Beauty sequences as clicks, ulb: ULB card transactions as payments, ipinyou: iPinYou impressions "
        "as ad requests, banking77: BANKING77's test messages as support messages). The shop's support "
        "messages follow its payments (declines, fraud, late deliveries). Stops after --count events, "
        "--duration seconds, the end of a replay, or Ctrl-C.",
    )
    parser.add_argument("scenario", choices=[*SIM_SCENARIOS, "all", *REPLAY_SCENARIOS])
    parser.add_argument("--rate", type=positive_float, default=100.0, help="events/s; 0 = unthrottled")
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    parser.add_argument("--bursty", action="store_true", help="alternate 5 s at 2x and 5 s at 0.2x the rate")
    parser.add_argument("--bad-fraction", type=fraction, default=0.0,
                        help="share of malformed events (DLQ demo); support messages get control characters, "
                        "overlong texts, invalid UTF-8 or a missing field")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--topic", help="produce to this topic instead of the scenario's default (one scenario)")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help="where the replayed data sets live (default: <repo>/../shared/data)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--feedback-topic",
                        help="also publish the shop's outcomes (clicks, chargebacks, sales at the decided price, "
                        "replayed labels) to this topic, when due; e.g. shop.feedback")
    parser.add_argument("--outcome-delay-scale", type=positive_float, default=1.0,
                        help="multiply the outcomes' compressed delays (clicks 1-5 s, settlement 30 s, "
                        "chargebacks 20-60 s, a pricing period 10 s); 0 = as soon as the event is sent")
    parser.add_argument("--decisions-topic", default=DEFAULT_DECISIONS_TOPIC,
                        help="where the pricing service's decisions are read, for sales outcomes")
    add_bootstrap(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    replay = args.scenario in REPLAY_SCENARIOS
    require(replay or args.count is not None or args.duration is not None or args.rate > 0,
            "an unthrottled producer needs --count or --duration")
    require(args.topic is None or args.scenario != "all", "--topic needs a single scenario, not 'all'")
    feedback: FeedbackPublisher | None = None
    if args.feedback_topic:
        rows = replay_rows(args.scenario, args.data_dir) if replay else sim_rows(args.scenario, args.seed)
        feedback = _publisher(args, kafka_from_args(args))
        records = with_outcomes(rows, feedback)
    else:
        records = replay_records(args.scenario, args.data_dir) if replay else sim_records(args.scenario, args.seed)
    if args.topic:
        records = ((args.topic, record) for _, record in records)
    kafka = kafka_from_args(args)
    require_reachable(kafka)
    generator = LoadGenerator(
        kafka, records, rate=args.rate, count=args.count, duration_s=args.duration, bad_fraction=args.bad_fraction,
        bursty=args.bursty, seed=args.seed, feedback=feedback, corrupters=_corrupters(args),
    )
    worker = threading.Thread(target=generator.run, daemon=True)
    worker.start()
    try:
        _show_progress(generator, worker, args.quiet, args.count)
    except KeyboardInterrupt:
        generator.stop()
        worker.join(30)
    print(f"produced {generator.sent} events ({generator.failed} failed)")
    if feedback is not None:
        print(f"published {generator.outcomes_sent} outcomes to {feedback.topic}")
    return 0 if generator.failed == 0 else 1


def _corrupters(args: argparse.Namespace) -> dict[str, Corrupter]:
    """Support messages are broken the ways a text service meets (on their topic, or ``--topic``)."""
    if args.scenario not in ("support", "banking77", "all"):
        return {}
    return {args.topic or TOPICS["support_messages"].default_topic: corrupt_message}


def _publisher(args: argparse.Namespace, kafka: KafkaSettings) -> FeedbackPublisher:
    return shop_publisher(kafka, args.scenario, args.feedback_topic, seed=args.seed,
                          delay_scale=args.outcome_delay_scale, decisions_topic=args.decisions_topic)


def _show_progress(generator: LoadGenerator, worker: threading.Thread, quiet: bool, total: int | None) -> None:
    if quiet:
        worker.join()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[rate]:.0f} ev/s")]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("produce", total=total, rate=0.0)
        started = time.monotonic()
        while worker.is_alive():
            worker.join(0.25)
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=generator.sent, rate=generator.sent / elapsed)
