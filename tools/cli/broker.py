"""``shopstream broker``: a local Apache Kafka broker (KRaft) for development, until Ctrl-C."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# imported here, not in run(): where the broker room is left out (the serving image), the CLI
# then does not offer this command at all instead of failing when it is run
from tools.broker.kafka import run_broker_forever


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "broker",
        help="run a local Apache Kafka broker (needs Java 17 and Maven; jars come from Maven Central)",
    )
    parser.add_argument("--port", type=int, default=9092, help="client port on 127.0.0.1 (default 9092)")
    parser.add_argument("--data-dir", type=Path, help="keep the broker's data here across restarts")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    run_broker_forever(port=args.port, data_dir=args.data_dir)
    return 0
