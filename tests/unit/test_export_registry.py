"""Recipe discovery and the ``shopstream export`` dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import registry
from export.cli import run_export
from shared.errors import ConfigError
from shared.models import ModelRepository

pytestmark = pytest.mark.train


def test_reference_recipes_are_discovered() -> None:
    recipes = registry.discover()
    assert {"tiny", "mlp"} <= set(recipes)
    assert "MLP" in recipes["tiny"].description
    with pytest.raises(ConfigError, match=r"no export recipe named 'nope'; known: .*tiny"):
        registry.get("nope")


def test_export_command_publishes_a_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tiny", "--tiny", "--quiet", "--models-dir", str(tmp_path), "--variants", "int8", "--epochs", "1"]
    assert run_export(argv) == 0
    assert run_export([*argv, "--from", "v0001"]) == 0
    repo = ModelRepository(tmp_path)
    assert repo.versions("tiny") == ["v0001", "v0002"]
    second = repo.verify("tiny", "v0002")
    assert second.training.from_version == "v0001" and set(second.variants) == {"int8"}
    err = capsys.readouterr().err
    assert "tiny v0002" in err and "parity passed" in err


def test_export_command_reports_errors_with_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_export(["ghost", "--models-dir", str(tmp_path)]) == 1
    assert run_export(["tiny", "--tiny", "--quiet", "--models-dir", str(tmp_path), "--from", "v0042"]) == 1
    err = capsys.readouterr().err
    assert "no export recipe named 'ghost'" in err and "version 'v0042' not found" in err


def test_the_same_seed_exports_the_same_recommendation_weights(tmp_path: Path) -> None:
    """Weight initialisation is seeded too, so a documented command reproduces its model."""
    digests = []
    for run in ("a", "b"):
        argv = ["recommendation", "--tiny", "--quiet", "--variants", "", "--models-dir", str(tmp_path / run)]
        assert run_export(argv) == 0
        manifest = ModelRepository(tmp_path / run).verify("recommendation", "v0001")
        assert manifest.checkpoint is not None
        digests.append(manifest.checkpoint.sha256)
    assert digests[0] == digests[1]
