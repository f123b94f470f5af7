"""``shopstream export <model> ...``: train, evaluate, export, parity-check and publish a model.

The real work lives in :mod:`export.cli` (it needs the ``train`` extra: torch and transformers);
this module only hands the remaining arguments over, so ``shopstream --help`` stays light.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.errors import ConfigError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="train/fine-tune, evaluate, export to ONNX with a parity gate, publish a model version",
        add_help=False,
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="see 'shopstream export --help'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from export.cli import run_export
    except ModuleNotFoundError as exc:
        hint = "pip install 'shopstream[train]'"
        raise ConfigError(f"'shopstream export' needs the train extra ({hint}): {exc}") from exc
    forwarded = list(args.args[1:] if args.args[:1] == ["--"] else args.args)
    return run_export(forwarded or ["--help"])
