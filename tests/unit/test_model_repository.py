"""Model repository: version ordering, atomic writes, checksums."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ChecksumMismatch, ModelError
from shared.models import ModelManifest, ModelRepository
from shared.models.manifest import file_ref
from tests.support.models import publish_linear


def flip_byte(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_versions_sort_numerically_and_ignore_strays(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    for version in ("v0010", "v0002", "v10000"):
        publish_linear(repo, version=version)
    (tmp_path / "linear" / "notes").mkdir()
    (tmp_path / "linear" / ".staging-abc").mkdir()
    assert repo.versions("linear") == ["v0002", "v0010", "v10000"]
    assert repo.latest("linear") == "v10000"
    assert repo.next_version("linear") == "v10001"


def test_next_version_counts_up_and_never_reuses_incomplete_folders(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    assert repo.next_version("fraud") == "v0001"
    assert publish_linear(repo, "fraud").version == "v0001"
    (tmp_path / "fraud" / "v0002").mkdir()  # a half-copied version: not listed, not reused
    assert repo.versions("fraud") == ["v0001"]
    assert publish_linear(repo, "fraud").version == "v0003"
    assert repo.get("fraud", "v0003").version == "v0003"


def test_write_is_atomic_when_a_checksum_is_wrong(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    good = publish_linear(repo)
    source = tmp_path / "other.onnx"
    source.write_bytes(b"not the model the manifest describes")
    with pytest.raises(ChecksumMismatch):
        repo.write_version(good.model_copy(), {"model.onnx": source})
    assert repo.versions("linear") == ["v0001"]
    assert sorted(p.name for p in (tmp_path / "linear").iterdir()) == ["v0001"]


def test_explicit_existing_version_is_refused(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    publish_linear(repo, version="v0001")
    with pytest.raises(ModelError, match="v0001"):
        publish_linear(repo, version="v0001", seed=5)
    assert repo.get("linear", "v0001").preprocessing == {"seed": 0}


def test_load_verified_refuses_a_flipped_byte(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    manifest = publish_linear(repo)
    loaded, data = repo.load_verified("linear", manifest.version)
    assert loaded.sha256 == manifest.sha256 and len(data) == manifest.size_bytes
    flip_byte(repo.path("linear", manifest.version) / "model.onnx")
    with pytest.raises(ChecksumMismatch) as info:
        repo.load_verified("linear", manifest.version)
    assert info.value.expected == manifest.sha256 and info.value.actual != manifest.sha256
    with pytest.raises(ChecksumMismatch):
        repo.verify("linear", manifest.version)


def test_manifest_round_trips_and_must_match_its_folder(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    manifest = publish_linear(repo)
    path = repo.path("linear", "v0001") / "manifest.json"
    assert ModelManifest.load(path) == manifest
    assert manifest.inputs[0].dynamic_axes == {0: "batch"}
    copy = tmp_path / "linear" / "v0002"
    copy.mkdir()
    (copy / "manifest.json").write_text(path.read_text())
    with pytest.raises(ModelError, match="describes linear v0001"):
        repo.get("linear", "v0002")
    with pytest.raises(ModelError, match="no variant 'int8'"):
        repo.load_verified("linear", "v0001", variant="int8")


def test_resolve_without_versions_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no versions of model 'ghost'"):
        ModelRepository(tmp_path).resolve("ghost")


def test_an_asset_travels_with_its_version_and_is_checked_like_the_graph(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    base = publish_linear(repo)
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_bytes(b'{"model": {"vocab": {"[PAD]": 0}}}')
    files = {"model.onnx": repo.path("linear", base.version) / "model.onnx", "tokenizer.json": tokenizer}
    with_asset = repo.write_version(base.model_copy(update={"assets": {"tokenizer": file_ref(tokenizer)}}), files)
    assert repo.read_asset(with_asset, "tokenizer") == tokenizer.read_bytes()
    with pytest.raises(ModelError, match="no asset 'vocab'"):
        repo.read_asset(with_asset, "vocab")
    flip_byte(repo.path("linear", with_asset.version) / "tokenizer.json", offset=3)
    with pytest.raises(ChecksumMismatch):
        repo.read_asset(with_asset, "tokenizer")
    with pytest.raises(ChecksumMismatch):
        repo.verify("linear", with_asset.version)
    missing = base.model_copy(update={"assets": {"tokenizer": file_ref(tokenizer)}})
    with pytest.raises(ModelError, match=r"tokenizer\.json"):
        repo.write_version(missing, {"model.onnx": files["model.onnx"]})
