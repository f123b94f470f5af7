"""Hostile model files: models load only as checksummed ONNX bytes, never through pickle.

A model version is a manifest plus ``model.onnx``; the loader hashes the bytes it read and
hands exactly those bytes to ONNX Runtime, which parses protobuf and nothing else. A pickle
(even one with a matching checksum) therefore cannot run code, and tampered bytes are refused
before ONNX Runtime sees them.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import ChecksumMismatch, ModelError
from shared.models.manifest import MANIFEST_FILE, ModelManifest, sha256_bytes
from shared.models.repository import ModelRepository
from shared.models.slot import ModelSlot
from tests.support.models import publish_linear

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("shared", "services")
UNSAFE_LOADERS = re.compile(r"^\s*(import pickle|from pickle|import dill|import joblib|import cloudpickle)"
                            r"|torch\.load\(|allow_pickle\s*=\s*True|pickle\.loads?\(", re.M)


class _Exploit:
    """Unpickling this creates a marker file: proof that a model went through pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _replace_model_bytes(repository: ModelRepository, manifest: ModelManifest, data: bytes,
                         fix_checksum: bool) -> None:
    folder = repository.path(manifest.name, manifest.version)
    (folder / manifest.file).write_bytes(data)
    if fix_checksum:  # an attacker who can also rewrite the manifest
        manifest.model_copy(update={"sha256": sha256_bytes(data), "size_bytes": len(data)}).save(
            folder / MANIFEST_FILE)


def test_no_runtime_module_imports_pickle_or_a_pickle_based_loader() -> None:
    offenders = [str(path.relative_to(REPO_ROOT)) for package in RUNTIME_PACKAGES
                 for path in (REPO_ROOT / package).rglob("*.py") if UNSAFE_LOADERS.search(path.read_text())]
    assert offenders == []


def test_a_pickle_with_a_matching_checksum_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    manifest = publish_linear(repository)
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Exploit(probe))).close()
    assert probe.exists(), "the exploit must work when unpickled, or this test proves nothing"
    marker = tmp_path / "unpickled"
    _replace_model_bytes(repository, manifest, pickle.dumps(_Exploit(marker)), fix_checksum=True)
    slot = ModelSlot(repository, manifest.name, providers=("cpu",), warm_up_batches=(), background=False)
    with pytest.raises(ModelError):
        slot.load()
    assert not marker.exists(), "the model file was unpickled"


def test_tampered_model_bytes_are_refused_before_onnx_runtime_sees_them(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    manifest = publish_linear(repository)
    good = (repository.path(manifest.name, manifest.version) / manifest.file).read_bytes()
    _replace_model_bytes(repository, manifest, good[:-1] + bytes([good[-1] ^ 1]), fix_checksum=False)
    with pytest.raises(ChecksumMismatch):
        repository.load_verified(manifest.name, manifest.version)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=512))
def test_arbitrary_bytes_with_a_matching_checksum_fail_as_a_model_error(tmp_path: Path, junk: bytes) -> None:
    repository = ModelRepository(tmp_path / f"models-{sha256_bytes(junk)[:12]}")
    manifest = publish_linear(repository)
    _replace_model_bytes(repository, manifest, junk, fix_checksum=True)
    slot = ModelSlot(repository, manifest.name, providers=("cpu",), warm_up_batches=(), background=False)
    with pytest.raises(ModelError):
        slot.load()
