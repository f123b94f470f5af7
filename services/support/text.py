"""Each model version's text pipeline (tokenizer, labels, padding), kept beside its graph.

The tokenizer travels in the version folder as the manifest's ``tokenizer`` asset and is read
through the repository, checksum-verified like the graph. It is loaded while the version is
prepared (the slot's ``validate`` hook, in its loader thread), so a version with a missing or
corrupt tokenizer is refused and the serving one stays; the scorer then looks the pipeline up by
the manifest it read from ``slot.current`` for the batch, so graph and tokenizer always change
together in a hot swap.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from tokenizers import Tokenizer

from services.support.model import TOKENIZER_ASSET
from services.support.tokens import load_tokenizer, pad_id_of
from shared.errors import ModelSpecMismatch
from shared.models.manifest import ModelManifest
from shared.models.repository import ModelRepository

logger = logging.getLogger(__name__)

KEPT = 3
"""Pipelines kept: the serving version's, one being prepared, one to roll back to."""


@dataclass(frozen=True, slots=True)
class TextPipeline:
    """What turns one version's text into its tensors and its outputs back into names."""

    tokenizer: Tokenizer
    pad_id: int
    labels: tuple[str, ...]
    threshold: float
    """The version's own ``escalation_threshold``."""


class TextPipelines:
    """Pipelines by model version and checksum; safe to fill from the slot's loader thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: OrderedDict[tuple[str, str], TextPipeline] = OrderedDict()

    def prepare(self, repository: ModelRepository, manifest: ModelManifest) -> TextPipeline:
        """Read and check ``manifest``'s tokenizer (``ChecksumMismatch``, ``ModelSpecMismatch``) and keep it."""
        pre = manifest.preprocessing
        data = repository.read_asset(manifest, TOKENIZER_ASSET)
        try:
            tokenizer = load_tokenizer(data, int(pre["max_length"]))
        except Exception as exc:
            raise ModelSpecMismatch(f"{manifest.name} {manifest.version}: unreadable tokenizer: {exc}") from exc
        pipeline = TextPipeline(tokenizer, pad_id_of(tokenizer, pre), tuple(pre["labels"]),
                                float(pre["escalation_threshold"]))  # fmt: skip
        with self._lock:
            self._by_version[(manifest.version, manifest.sha256)] = pipeline
            while len(self._by_version) > KEPT:
                self._by_version.popitem(last=False)
        logger.info("model=%s version=%s tokenizer ready (vocab %d, max_length %s, %d labels)", manifest.name,
                    manifest.version, tokenizer.get_vocab_size(), pre["max_length"], len(pipeline.labels))
        return pipeline

    def for_manifest(self, repository: ModelRepository, manifest: ModelManifest) -> TextPipeline:
        """The pipeline of the version ``manifest`` describes (read now if it was not prepared)."""
        with self._lock:
            found = self._by_version.get((manifest.version, manifest.sha256))
            if found is not None:
                self._by_version.move_to_end((manifest.version, manifest.sha256))
                return found
        return self.prepare(repository, manifest)
