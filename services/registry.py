"""Which services exist and where their code lives; the CLI and runtime look them up here.

Each service module exports ``SETTINGS_CLASS`` (a :class:`ServiceSettings` subclass with its
own env prefix) and ``create_scorer(settings)``. Modules are imported only when asked for, so
``shopstream --help`` does not load ONNX Runtime or any model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from shared.errors import ConfigError
from shared.runtime.scorer import Scorer
from shared.settings import ServiceSettings

SERVICE_MODULES = {
    "recommendation": "services.recommendation",
    "ad_ctr": "services.ad_ctr",
    "pricing": "services.pricing",
    "fraud": "services.fraud",
    "support": "services.support",
    "monitor": "services.monitor",
    "echo": "shared.runtime.echo",
}
"""The shop services (support included), the live-quality monitor, and ``echo`` for tests and benchmarks."""

SHOP_SERVICES = ("recommendation", "ad_ctr", "pricing", "fraud", "support")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    settings_class: type[ServiceSettings]
    create_scorer: Callable[[ServiceSettings], Scorer[Any]]


def load_service(name: str) -> ServiceSpec:
    if name not in SERVICE_MODULES:
        raise ConfigError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_MODULES)}")
    module = importlib.import_module(SERVICE_MODULES[name])
    return ServiceSpec(
        name=name,
        settings_class=cast(type[ServiceSettings], module.SETTINGS_CLASS),
        create_scorer=cast(Callable[[ServiceSettings], Scorer[Any]], module.create_scorer),
    )
