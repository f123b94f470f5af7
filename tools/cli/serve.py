"""``shopstream serve <service>``: run one service until SIGTERM."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from services.registry import SERVICE_MODULES, load_service
from shared.errors import ConfigError
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run one service (configured by SHOPSTREAM_<SERVICE>_* env vars or an env file)",
        description="Run one scoring service. Settings come from the environment "
        "(SHOPSTREAM_<SERVICE>_..., nested with __) and optionally an env file.",
    )
    parser.add_argument("service", choices=sorted(SERVICE_MODULES))
    parser.add_argument("--env-file", type=Path, help="a .env file with settings (environment wins)")
    parser.add_argument("--secrets-dir", type=Path, help="a directory of secret files (e.g. a mounted Secret)")
    parser.set_defaults(handler=run)


def load_settings(service: str, env_file: Path | None = None, secrets_dir: Path | None = None) -> ServiceSettings:
    spec = load_service(service)
    kwargs: dict[str, Any] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"env file {env_file} does not exist")
        kwargs["_env_file"] = env_file
    if secrets_dir is not None:
        kwargs["_secrets_dir"] = secrets_dir
    try:
        return spec.settings_class(**kwargs)
    except (ValidationError, SettingsError) as exc:
        raise ConfigError(f"invalid settings for {service}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from shared.logconfig import configure_logging
    from shared.runtime.app import ServiceApp

    settings = load_settings(args.service, args.env_file, args.secrets_dir)
    if settings.log_json:
        configure_logging(args.log_level, json_logs=True)
    scorer = load_service(args.service).create_scorer(settings)
    ServiceApp(settings, scorer).run()
    return 0
