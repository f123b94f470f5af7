"""The ``shopstream`` command: one entry point for every task people run.

Exit codes: 0 success, 1 runtime failure, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from shared.errors import ConfigError, ShopstreamError
from tools.cli import serve, topics

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


OPTIONAL_COMMANDS = ("demo", "produce", "tail", "dlq", "broker", "export_cmd", "bench", "models", "replay")
TOOL_ROOMS = ("sim", "export", "tools.bench", "tools.loadgen", "tools.broker", "tools.replay", "torch",
              "matplotlib")
"""What the serving image leaves out: a command that needs one of them is not offered there."""


def _command_modules() -> list[ModuleType]:
    modules: list[ModuleType] = [serve, topics]
    for name in OPTIONAL_COMMANDS:
        try:
            modules.append(importlib.import_module(f"tools.cli.{name}"))
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not any(missing == room or missing.startswith(room + ".") for room in TOOL_ROOMS):
                raise
            logger.debug("command %s needs %s, which this installation leaves out", name, missing)
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
