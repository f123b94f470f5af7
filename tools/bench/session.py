"""What every benchmark suite shares: the machine's description, the broker, the report sink."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from services.registry import SHOP_SERVICES
from shared.models.repository import ModelRepository
from shared.settings import KafkaSettings
from tools.bench.model_limit import model_name
from tools.bench.wiring import MODELS_DIR
from tools.broker.kafka import KafkaBroker


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime as ort

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}, onnxruntime {ort.__version__}, load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def services_with_models() -> list[str]:
    repo = ModelRepository(MODELS_DIR)
    found = []
    for name in SHOP_SERVICES:
        if repo.latest(model_name(name)):
            found.append(name)
    return found


class Output:
    """Prints each section as it is ready and keeps the markdown file up to date."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.sections: list[str] = []

    def add(self, text: str) -> None:
        print(text + "\n", flush=True)
        self.sections.append(text)
        if self.path:
            self.path.write_text("\n\n".join(self.sections) + "\n")


@contextmanager
def kafka_for(args: argparse.Namespace) -> Iterator[KafkaSettings]:
    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            bootstrap = stack.enter_context(KafkaBroker()).bootstrap_servers
        yield KafkaSettings(bootstrap_servers=bootstrap)
