"""A scorer served by one hot-swappable model: the slot plumbing every shop scorer shares.

A subclass names the graph it expects (``model_inputs``, ``model_outputs``) and implements
``predict(batch)``, reading ``self.slot.current`` once per batch so that graph and manifest stay
consistent even across a swap. This class builds the :class:`~shared.models.slot.ModelSlot` from
the service settings at :meth:`load` (reporting to the runtime's metrics), loads the serving
version, reports it as ``model_info``, installs a newer version between batches and stops the
background loader on :meth:`close`.

It also runs the service's rollout (:mod:`shared.runtime.rollout.controller`): ``score(batch)`` is
``predict(batch)`` unless a candidate version runs in shadow or as a canary, when the candidate
predicts the batch, or its share of the keys, inside the same ``slot.current`` contract; and the
version a promotion or rollback decided on the model-events topic is the one served, from start.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel

from shared.errors import ModelError
from shared.models.manifest import ModelManifest
from shared.models.session import SpecLike
from shared.models.slot import GraphTransform, ModelSlot
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.rollout.controller import Rollout
from shared.runtime.scorer import Event, LoadContext, ModelInfo, Scorer, ScoreResult
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=BaseModel)
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class ModelScorer(Scorer[EventT], Generic[EventT, SettingsT]):
    """Base class of a scorer whose model lives in the model repository (``settings.models_dir``)."""

    model_inputs: ClassVar[SpecLike] = ()
    """The graph inputs ``score`` feeds; a version with other inputs is refused (``spec``)."""
    model_outputs: ClassVar[SpecLike] = ()
    """The graph outputs ``score`` reads; a version lacking one is refused (``spec``)."""
    supports_rollout: ClassVar[bool] = True

    def __init__(self, settings: SettingsT, model_name: str, slot: ModelSlot | None = None) -> None:
        """No I/O here. ``slot`` serves a slot built elsewhere (a test's stub) instead of one
        built from ``settings`` at :meth:`load`."""
        self.settings = settings
        self.model_name = model_name
        self._slot = slot
        self.rollout: Rollout | None = None

    @property
    def slot(self) -> ModelSlot:
        """The model slot; read ``slot.current`` once per batch."""
        if self._slot is None:
            raise ModelError(f"model {self.model_name} is not loaded yet (call load() first)")
        return self._slot

    def load(self, context: LoadContext) -> None:
        """Load the version the latest model decision made live, else the pinned or newest usable
        one (errors stop the process); then :meth:`on_load`."""
        if self._slot is None:
            self._slot = ModelSlot.from_settings(
                self.settings, self.model_name, expected_inputs=self.model_inputs,
                expected_outputs=self.model_outputs, validate=self.check_manifest,
                transform=self.graph_transform(), warm_up_dims=self.warm_up_dims(), metrics=context.model_metrics,
            )  # fmt: skip
        metrics = context.model_metrics
        self.rollout = Rollout(
            self._slot, self.settings.service_name, self.settings.output_topic, config=context.config,
            decisions=context.model_events, state=context.state, view=self.agreement_view,
            metrics=metrics.rollout if isinstance(metrics, RuntimeMetrics) else None,
        )
        self._load_decided(self._slot, self.rollout.live_version_decided())
        self.rollout.between_batches()
        self.on_load(context)

    @staticmethod
    def _load_decided(slot: ModelSlot, decided: str | None) -> None:
        """Serve the decided version: a promotion outranks the deployment's pin and newer files. One
        this instance cannot load (missing here, or refused) is logged, the instance starts on what
        its settings give, and ShopstreamReplicasDisagreeOnModel tells it lags behind the decision."""
        if decided is not None:
            configured = slot.pinned_version
            slot.pinned_version = decided
            try:
                slot.load()
                return
            except Exception as exc:  # missing here, checksum, spec: any refusal falls back
                logger.error("the decided version %s of %s cannot be served here (%s); starting on %s",
                             decided, slot.name, exc, configured or "the newest usable version")
                slot.pinned_version = configured
        slot.load()

    def on_load(self, context: LoadContext) -> None:
        """Hook: the model is serving; take the state store and config source from ``context``."""

    def check_manifest(self, manifest: ModelManifest) -> None:
        """Hook: raise ``ModelSpecMismatch`` to refuse a version this scorer cannot use (e.g. other
        features). Called while a version is prepared, possibly in the slot's loader thread."""

    def graph_transform(self) -> GraphTransform | None:
        """Hook: a function that builds the graph to serve from each version's verified file (e.g. by
        appending post-processing); ``model_inputs``/``model_outputs`` then describe its result. Called
        while a version is prepared, possibly in the slot's loader thread. ``None`` serves the file."""
        return None

    def warm_up_dims(self) -> Mapping[str, int]:
        """Hook: sizes for the graph's symbolic dims other than the batch, used to warm it up."""
        return {}

    def score(self, batch: Sequence[Event[EventT]]) -> Sequence[ScoreResult]:
        """:meth:`predict`, by the live version or, under a rollout, by the candidate as well."""
        if self.rollout is None:
            return self.predict(batch)
        return self.rollout.score(batch, self.predict)

    @abstractmethod
    def predict(self, batch: Sequence[Event[EventT]]) -> Sequence[ScoreResult]:
        """Score a micro-batch with ``self.slot.current`` (read once): one result per event, in order."""

    @property
    def model_info(self) -> ModelInfo:
        if self._slot is None or not self._slot.loaded:
            return super().model_info
        return self._slot.model_info

    def between_batches(self) -> None:
        """Install a newer model version if one is ready (cheap; the repository is polled rarely)."""
        if self._slot is not None:
            self._slot.maybe_swap()
        if self.rollout is not None:
            self.rollout.between_batches()

    def close(self) -> None:
        """Stop the slot's background loader (not called after a crash)."""
        if self._slot is not None:
            self._slot.close()
        if self.rollout is not None:
            self.rollout.close()
