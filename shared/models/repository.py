"""The on-disk model repository: ``<root>/<name>/<version>/{model.onnx, manifest.json, ...}``.

Versions are ``v`` plus a zero-padded counter (``v0001``, ``v0002``...). They are compared as
integers, so ``v10000`` still sorts after ``v9999``; anything else in a model folder (staging
folders, notes) is ignored. A version folder is immutable once written: a fix is a new version.

Writes are atomic: files are copied into a hidden staging folder beside the versions, checked
against the manifest, and the folder is renamed into place. Readers therefore see a whole
version or none of it, and two concurrent exporters cannot write the same version.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from shared.errors import ChecksumMismatch, ModelError
from shared.models.manifest import MANIFEST_FILE, ModelManifest, sha256_bytes, sha256_file

logger = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^v(\d+)$")
_WRITE_ATTEMPTS = 5


def version_number(version: str) -> int | None:
    """``"v0042"`` → 42; ``None`` for names that are not versions."""
    match = _VERSION_RE.match(version)
    return int(match.group(1)) if match else None


def format_version(number: int) -> str:
    return f"v{number:04d}"


class ModelRepository:
    """Versions of named models under one root folder (``settings.models_dir``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[str]:
        """Complete versions of ``name`` (those with a manifest), oldest first."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [
            (number, p.name)
            for p in folder.iterdir()
            if (number := version_number(p.name)) is not None and (p / MANIFEST_FILE).is_file()
        ]
        return [v for _, v in sorted(found)]

    def latest(self, name: str) -> str | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def resolve(self, name: str, version: str | None = None) -> str:
        """The pinned ``version`` if given, else the latest; raises if there is none."""
        chosen = version or self.latest(name)
        if chosen is None:
            raise ModelError(f"no versions of model {name!r} under {self.root}")
        return chosen

    def next_version(self, name: str) -> str:
        numbers = [version_number(p.name) for p in (self.root / name).glob("v*")]
        return format_version(max((n for n in numbers if n is not None), default=0) + 1)

    def path(self, name: str, version: str) -> Path:
        return self.root / name / version

    def get(self, name: str, version: str) -> ModelManifest:
        """The manifest of one version; checks it really describes that name and version."""
        path = self.path(name, version) / MANIFEST_FILE
        if not path.is_file():
            raise ModelError(f"model {name!r} version {version!r} not found ({path} missing)")
        try:
            manifest = ModelManifest.load(path)
        except ValueError as exc:
            raise ModelError(f"{path}: invalid manifest: {exc}") from exc
        if (manifest.name, manifest.version) != (name, version):
            raise ModelError(f"{path} describes {manifest.name} {manifest.version}, not {name} {version}")
        return manifest

    def load_verified(
        self, name: str, version: str, variant: str | None = None
    ) -> tuple[ModelManifest, bytes]:
        """The manifest and the ONNX bytes, checked against the manifest's sha256.

        The bytes are hashed in memory and handed to ONNX Runtime as they are, so the
        file cannot change between the check and the load. Raises ``ChecksumMismatch``.
        """
        manifest = self.get(name, version)
        file_name, expected = manifest.file_for(variant)
        path = self.path(name, version) / file_name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc}") from exc
        actual = sha256_bytes(data)
        if actual != expected:
            raise ChecksumMismatch(str(path), expected, actual)
        return manifest, data

    def read_asset(self, manifest: ModelManifest, role: str) -> bytes:
        """The bytes of one of ``manifest``'s assets, checked against its sha256 like the graph."""
        ref = manifest.assets.get(role)
        if ref is None:
            raise ModelError(f"{manifest.name} {manifest.version} has no asset {role!r} "
                             f"(has: {sorted(manifest.assets) or 'none'})")
        path = self.path(manifest.name, manifest.version) / ref.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc}") from exc
        actual = sha256_bytes(data)
        if actual != ref.sha256:
            raise ChecksumMismatch(str(path), ref.sha256, actual)
        return data

    def verify(self, name: str, version: str) -> ModelManifest:
        """Check every file the manifest names (model, variants, checkpoint, assets)."""
        manifest = self.get(name, version)
        for file_name, expected in _named_files(manifest).items():
            path = self.path(name, version) / file_name
            actual = sha256_file(path) if path.is_file() else "missing"
            if actual != expected:
                raise ChecksumMismatch(str(path), expected, actual)
        return manifest

    def write_version(
        self, manifest: ModelManifest, files: Mapping[str, Path], *, version: str | None = None
    ) -> ModelManifest:
        """Publish ``files`` (name in the version folder → source path) as a new version.

        ``version=None`` takes :meth:`next_version` (retrying if another writer wins the
        race); an explicit version that already exists is an error. Every file the manifest
        names must be among ``files`` with a matching sha256. Returns the manifest as written.
        """
        folder = self.root / manifest.name
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            for file_name, source in files.items():
                shutil.copyfile(source, staging / file_name)
            _check_staged(manifest, staging)
            return self._commit(manifest, staging, version)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, manifest: ModelManifest, staging: Path, version: str | None) -> ModelManifest:
        for _ in range(_WRITE_ATTEMPTS):
            chosen = version or self.next_version(manifest.name)
            final = manifest.model_copy(update={"version": chosen})
            final.save(staging / MANIFEST_FILE)
            target = self.path(manifest.name, chosen)
            try:
                # rename(2) of a folder fails when the target exists and is non-empty.
                if target.exists():
                    raise FileExistsError(errno.EEXIST, "exists", str(target))
                os.rename(staging, target)
            except OSError as exc:
                if version is not None or exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise ModelError(f"cannot write {target}: {exc}") from exc
                continue
            logger.info("model=%s version=%s written to %s", final.name, chosen, target)
            return final
        raise ModelError(f"could not claim a new version of {manifest.name} after {_WRITE_ATTEMPTS} tries")


def _named_files(manifest: ModelManifest) -> dict[str, str]:
    named = {manifest.file: manifest.sha256}
    named.update({v.file: v.sha256 for v in manifest.variants.values()})
    if manifest.checkpoint is not None:
        named[manifest.checkpoint.file] = manifest.checkpoint.sha256
    named.update({ref.file: ref.sha256 for ref in manifest.assets.values()})
    return named


def _check_staged(manifest: ModelManifest, staging: Path) -> None:
    for file_name, expected in _named_files(manifest).items():
        path = staging / file_name
        if not path.is_file():
            raise ModelError(f"manifest of {manifest.name} names {file_name!r} but no such file was given")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumMismatch(file_name, expected, actual)
