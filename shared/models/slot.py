"""Hot-swappable model holder for a scorer.

A scorer keeps one :class:`ModelSlot`, reads ``slot.current`` once per batch (model and
manifest together, so preprocessing constants always match the graph), and calls
``slot.maybe_swap()`` from its ``between_batches`` hook. A newer version is loaded, verified
(sha256, manifest spec, scorer spec) and warmed up in a background thread *beside* the one
serving; the switch is one reference assignment between batches, so no event sees a
half-loaded model and none is dropped. A version that is refused is logged, counted in
``shopstream_model_load_failures`` and remembered, and the old version keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx

from shared.errors import ChecksumMismatch, ModelError, ModelSpecMismatch
from shared.models.info import ModelInfo
from shared.models.manifest import ModelManifest
from shared.models.repository import ModelRepository, version_number
from shared.models.session import OnnxModel, SpecLike, check_specs, graph_specs

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge

    from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

FailureCallback = Callable[[str, str, Exception], None]
"""Called with ``(version, reason, error)`` when a version is refused."""
GraphTransform = Callable[[ModelManifest, onnx.ModelProto], onnx.ModelProto]
"""Turns a verified model file into the graph served, e.g. by appending post-processing to it."""


class SlotMetrics(Protocol):
    """The metric families a slot reports to (the runtime's metrics have them)."""

    service: str
    model_info: Gauge
    model_load_failures: Counter


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified, warmed-up model version and its manifest."""

    manifest: ModelManifest
    model: OnnxModel

    @property
    def info(self) -> ModelInfo:
        m = self.manifest
        return ModelInfo(name=m.name, version=m.version, sha256=m.sha256, provider=self.model.provider)


def failure_reason(error: Exception) -> str:
    """Low-cardinality metric label for a refused version."""
    if isinstance(error, ChecksumMismatch):
        return "checksum"
    if isinstance(error, ModelSpecMismatch):
        return "spec"
    return "load"


class ModelSlot:
    """The serving version of one named model, with checked hot swaps between batches."""

    def __init__(
        self,
        repository: ModelRepository,
        name: str,
        *,
        pinned_version: str | None = None,
        variant: str | None = None,
        providers: Sequence[str] = ("tensorrt", "cuda", "cpu"),
        intra_op_threads: int = 0,
        expected_inputs: SpecLike = (),
        expected_outputs: SpecLike = (),
        validate: Callable[[ModelManifest], None] | None = None,
        transform: GraphTransform | None = None,
        warm_up_batches: Sequence[int] = (1, 8, 256),
        warm_up_dims: Mapping[str, int] | None = None,
        poll_interval_s: float = 10.0,
        background: bool = True,
        metrics: SlotMetrics | None = None,
        on_failure: FailureCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing is loaded until :meth:`load`. ``validate`` may raise ``ModelSpecMismatch``
        for manifests the scorer cannot use (e.g. a feature spec it does not know). ``metrics``
        (the runtime's, handed to scorers as ``LoadContext.model_metrics``) gets the serving
        version's info gauge and the refused versions' count; without it nothing is reported.
        ``transform`` rewrites each verified graph before its session is created (the committed file
        and its checksum stay as they are); the manifest is checked against the file before it, the
        scorer's spec (``expected_*``) against the graph served."""
        self.repository = repository
        self.name = name
        self.pinned_version = pinned_version
        self.variant = variant
        self._session_args: dict[str, Any] = {"providers": providers, "intra_op_threads": intra_op_threads}
        self._expected = (expected_inputs, expected_outputs)
        self._validate = validate
        self._transform = transform
        self._warm_up = (tuple(warm_up_batches), dict(warm_up_dims or {}))
        self.poll_interval_s = poll_interval_s
        self.background = background
        self._metrics = metrics
        self._on_failure = on_failure
        self._clock = clock
        self._current: LoadedModel | None = None
        self._next_poll = 0.0
        self._pending: tuple[str, Future[LoadedModel]] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.refused: dict[str, str] = {}
        """Versions refused in this process → reason; they are not retried by polling."""

    @classmethod
    def from_settings(cls, settings: ServiceSettings, name: str, **kwargs: Any) -> ModelSlot:
        """A slot configured from the service settings (models dir, pin, providers, threads, poll)."""
        kwargs.setdefault("pinned_version", settings.model_version)
        kwargs.setdefault("providers", tuple(settings.execution_providers))
        kwargs.setdefault("intra_op_threads", settings.intra_op_threads)
        kwargs.setdefault("poll_interval_s", settings.model_poll_interval_s)
        if settings.model_variant != "fp32":
            kwargs.setdefault("variant", settings.model_variant)
        return cls(ModelRepository(settings.models_dir), name, **kwargs)

    @property
    def current(self) -> LoadedModel:
        if self._current is None:
            raise ModelError(f"model {self.name} is not loaded yet (call load() first)")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def model_info(self) -> ModelInfo:
        return self.current.info

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the serving model (read ``current`` instead when the manifest is needed too)."""
        return self.current.model.run(feeds)

    def load(self) -> LoadedModel:
        """Load the pinned version, or the newest version that passes every check.

        A pinned version that fails raises. Otherwise refused versions are skipped (logged
        and counted) and older ones tried; ``ModelError`` if none is usable.
        """
        self._next_poll = self._clock() + self.poll_interval_s
        if self.pinned_version is not None:
            return self.swap_to(self.pinned_version)
        for version in reversed(self.repository.versions(self.name)):
            loaded = self._try_prepare(version)
            if loaded is not None:
                self._install(loaded)
                return loaded
        detail = ", ".join(f"{v} ({r})" for v, r in self.refused.items()) or "none found"
        raise ModelError(f"no usable version of model {self.name} in {self.repository.root}: {detail}")

    def maybe_swap(self, *, block: bool = False) -> bool:
        """Between batches: switch to a newer version if one is ready. Cheap to call often.

        Polls the repository at most every ``poll_interval_s``. With ``background=True`` the
        new version is prepared in a worker thread and installed on a later call once ready;
        ``block=True`` waits for it. Returns ``True`` when the serving version changed.
        """
        if self._pending is not None:
            version, future = self._pending
            if not (block or future.done()):
                return False
            self._pending = None
            return self._finish(version, future)
        if self.pinned_version is not None or self._clock() < self._next_poll:
            return False
        self._next_poll = self._clock() + self.poll_interval_s
        candidate = self._candidate()
        if candidate is None:
            return False
        if block or not self.background:
            loaded = self._try_prepare(candidate)
            return loaded is not None and self._install(loaded)
        self._executor = self._executor or ThreadPoolExecutor(1, thread_name_prefix=f"model-{self.name}")
        self._pending = (candidate, self._executor.submit(self._prepare, candidate))
        logger.info("model=%s version=%s found; preparing beside %s", self.name, candidate, self._serving())
        return False

    def swap_to(self, version: str, *, pin: bool = True) -> LoadedModel:
        """Load ``version`` now (even one refused before) and serve it; raises if it is refused.

        ``pin=True`` (the default) stops polling for newer versions, so a rollback sticks;
        :meth:`unpin` resumes following the latest.
        """
        if self._current is not None and self._current.manifest.version == version:
            self.pinned_version = version if pin else self.pinned_version
            return self._current
        try:
            loaded = self._prepare(version)
        except Exception as exc:
            self._refuse(version, exc)
            raise
        self.refused.pop(version, None)
        self.pinned_version = version if pin else self.pinned_version
        self._install(loaded)
        return loaded

    def prepare(self, version: str) -> LoadedModel:
        """Load, verify and warm up ``version`` without serving it (a candidate beside the live one).
        Thread-safe; a refusal is logged, counted and raised."""
        try:
            return self._prepare(version)
        except Exception as exc:
            self._refuse(version, exc)
            raise

    def install(self, loaded: LoadedModel, *, pin: bool = True) -> None:
        """Serve a version :meth:`prepare` made, between batches; ``pin`` stops following newer ones."""
        if pin:
            self.pinned_version = loaded.manifest.version
        if self._current is not loaded:
            self.refused.pop(loaded.manifest.version, None)
            self._install(loaded)

    @contextlib.contextmanager
    def serving(self, loaded: LoadedModel) -> Iterator[LoadedModel]:
        """Within the block, ``current`` is ``loaded``: a scorer that reads ``current`` once per batch
        scores that batch with it. For a candidate's pass over a batch, in the scoring thread only."""
        previous, self._current = self._current, loaded
        try:
            yield loaded
        finally:
            self._current = previous

    def unpin(self) -> None:
        self.pinned_version = None
        self._next_poll = 0.0

    def close(self) -> None:
        """Stop the background loader (not guaranteed to be called after a crash)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _serving(self) -> str:
        return self._current.manifest.version if self._current else "nothing"

    def _candidate(self) -> str | None:
        try:
            latest = self.repository.latest(self.name)
        except OSError as exc:
            logger.warning("model=%s cannot list versions in %s: %s", self.name, self.repository.root, exc)
            return None
        if latest is None or latest in self.refused or self._current is None:
            return None
        newer = (version_number(latest) or 0) > (version_number(self._current.manifest.version) or 0)
        return latest if newer else None

    def _prepare(self, version: str) -> LoadedModel:
        manifest, data = self.repository.load_verified(self.name, version, self.variant)
        if self._validate is not None:
            self._validate(manifest)
        if self._transform is None:
            model = OnnxModel(data, name=self.name, version=version, **self._session_args)
            model.check_spec(manifest.inputs, manifest.outputs, source="manifest")
        else:
            graph = onnx.load_model_from_string(data)
            check_specs(*graph_specs(graph.graph), manifest.inputs, manifest.outputs,
                        what=f"model {self.name} {version}", source="manifest")
            served = self._transform(manifest, graph).SerializeToString()
            model = OnnxModel(served, name=self.name, version=version, **self._session_args)
        model.check_spec(*self._expected, source="scorer")
        batches, dims = self._warm_up
        model.warm_up(batches, dims)
        return LoadedModel(manifest, model)

    def _try_prepare(self, version: str) -> LoadedModel | None:
        try:
            return self._prepare(version)
        except Exception as exc:
            self._refuse(version, exc)
            return None

    def _finish(self, version: str, future: Future[LoadedModel]) -> bool:
        try:
            loaded = future.result()
        except Exception as exc:
            self._refuse(version, exc)
            return False
        return self._install(loaded)

    def _refuse(self, version: str, error: Exception) -> None:
        reason = failure_reason(error)
        self.refused[version] = reason
        logger.error("model=%s version=%s refused (%s): %s; serving %s",
                     self.name, version, reason, error, self._serving())
        if self._metrics is not None:
            self._metrics.model_load_failures.labels(service=self._metrics.service, reason=reason).inc()
        if self._on_failure is not None:
            self._on_failure(version, reason, error)

    def _install(self, loaded: LoadedModel) -> bool:
        old, self._current = self._current, loaded
        if self._metrics is not None:
            gauge, service = self._metrics.model_info, self._metrics.service
            if old is not None:
                with contextlib.suppress(KeyError):  # someone else may have cleared the series
                    gauge.remove(service, *_info_labels(old.info))
            gauge.labels(service, *_info_labels(loaded.info)).set(1)
        logger.info("model=%s now serving version=%s (was %s) provider=%s",
                    self.name, loaded.manifest.version, old.manifest.version if old else "nothing",
                    loaded.model.provider)
        return True


def _info_labels(info: ModelInfo) -> tuple[str, str, str, str]:
    # The runtime labels the model info gauge with a 12-character sha256 prefix: keep the same series.
    return info.name, info.version, info.sha256[:12], info.provider
