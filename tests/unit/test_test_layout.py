"""The test suite's own layout: test modules share helpers only through ``tests.support``; every test
under tests/integration talks to a broker and is marked ``integration``; tests/unit never does."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.collection import CollectedTest, read
from tools.supervisor import REPO_ROOT

TESTS = REPO_ROOT / "tests"
BROKER_FIXTURES = {"kafka_broker", "kafka_bootstrap", "kafka_cluster", "broker_factory", "secure_kafka", "tansu"}
"""Fixtures that start a broker or hand one out (tests/conftest.py, test_security.py, test_tansu.py)."""
STARTS_ITS_OWN_BROKER = {
    "tests/integration/test_demo.py::test_demo_scores_with_every_service_and_leaves_nothing_behind":
        "`shopstream demo` starts Apache Kafka or Tansu itself: that is what it tests",
}


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, a module of ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            if node.module:
                found.append((node.lineno, ".".join(p for p in (base, node.module) if p)))
            else:  # from . import x: x may be a module
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).parent.parts)


def test_test_modules_import_helpers_only_from_tests_support() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_modules(path.read_text(), package_of(path))
        if module.startswith("tests.") and not (module == "tests.support" or module.startswith("tests.support."))
    ]
    assert offenders == [], "move shared helpers to tests/support/:\n" + "\n".join(offenders)


def test_the_import_check_resolves_absolute_and_relative_imports() -> None:
    source = ("from tests.integration.test_cli import x\nfrom .test_replay import y\nfrom ..conftest import z\n"
              "import tests.unit.test_sim\nfrom tests.support.echo import good\nfrom . import test_sim\n")
    modules = [m for _, m in imported_modules(source, package_of(TESTS / "unit" / "test_x.py"))]
    assert modules == ["tests.integration.test_cli", "tests.unit.test_replay", "tests.conftest",
                       "tests.unit.test_sim", "tests.support.echo", "tests.unit.test_sim"]


def is_integration_mark(node: ast.AST) -> bool:
    """``pytest.mark.integration`` (or ``mark.integration``) anywhere in the code, not in a string."""
    return (isinstance(node, ast.Attribute) and node.attr == "integration"
            and isinstance(node.value, ast.Attribute) and node.value.attr == "mark")


@pytest.fixture(scope="module")
def integration_tests(tmp_path_factory: pytest.TempPathFactory) -> list[CollectedTest]:
    out = tmp_path_factory.mktemp("collection") / "integration.json"
    result = subprocess.run([sys.executable, "-m", "tests.support.collection", "tests/integration", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tests = read(out)
    assert len(tests) > 20, "collection found almost nothing: the check would pass vacuously"
    return tests


def test_every_integration_test_is_marked_integration(integration_tests: list[CollectedTest]) -> None:
    unmarked = [t.nodeid for t in integration_tests if "integration" not in t.markers]
    assert unmarked == [], "mark these `integration` (pytestmark = pytest.mark.integration):\n" + "\n".join(unmarked)


def test_every_integration_test_uses_a_broker(integration_tests: list[CollectedTest]) -> None:
    broker_free = [t.nodeid for t in integration_tests
                   if not BROKER_FIXTURES & set(t.fixtures) and t.nodeid.split("[")[0] not in STARTS_ITS_OWN_BROKER]
    assert broker_free == [], "these need no broker: move them to tests/unit/\n" + "\n".join(broker_free)


def test_the_tests_that_start_their_own_broker_exist_and_request_none(integration_tests: list[CollectedTest]) -> None:
    by_function: dict[str, list[CollectedTest]] = {}
    for t in integration_tests:
        by_function.setdefault(t.nodeid.split("[")[0], []).append(t)
    for nodeid in STARTS_ITS_OWN_BROKER:
        assert nodeid in by_function, f"{nodeid} is gone: drop it from STARTS_ITS_OWN_BROKER"
        assert all(not BROKER_FIXTURES & set(t.fixtures) for t in by_function[nodeid]), f"{nodeid} uses a fixture"


def test_no_unit_test_is_marked_integration_or_requests_a_broker() -> None:
    offenders = []
    for path in sorted((TESTS / "unit").rglob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        if any(is_integration_mark(node) for node in ast.walk(tree)):
            offenders.append(f"{path.relative_to(REPO_ROOT)} is marked integration")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                wanted = BROKER_FIXTURES & {a.arg for a in node.args.args}
                if wanted:
                    offenders.append(f"{path.relative_to(REPO_ROOT)}::{node.name} requests {sorted(wanted)}")
    assert offenders == [], "tests/unit runs without a broker:\n" + "\n".join(offenders)
