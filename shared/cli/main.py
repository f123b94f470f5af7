"""The ``shopstream`` command: one entry point for every task people run.

Exit codes: 0 success, 1 runtime failure, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from shared.cli import serve, topics
from shared.errors import ConfigError, ShopstreamError

logger = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopstream",
        description="Real-time AI scoring for e-commerce event streams on Kafka.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)  # each command module exposes register(subparsers)
    return parser


def _command_modules() -> list[ModuleType]:
    modules: list[ModuleType] = [serve, topics]
    # Optional commands whose modules pull heavier dependencies are added when present.
    import importlib

    for name in ("demo", "produce", "tail", "dlq", "broker", "export_cmd", "bench"):
        try:
            modules.append(importlib.import_module(f"shared.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"shared.cli.{name}":
                raise
    return modules


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        # export owns all of its arguments (including --help), so argparse must not see them here
        argv = ["export", "--", *argv[1:]]
    parser = build_parser()
    args = parser.parse_args(argv)
    from shared.logconfig import configure_logging

    configure_logging(args.log_level, json_logs=getattr(args, "json_logs", False))
    handler: Command = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"shopstream: error: {exc}", file=sys.stderr)
        return 2
    except ShopstreamError as exc:
        print(f"shopstream: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
