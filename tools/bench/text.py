"""A text model's batches for the model limit: real messages, tokenised and grouped as the service does.

Tiling one captured call would time a single sequence length. A text model's cost follows its
messages' token lengths and the padding of each call, so at every batch size ``n`` the limit runs
the same sample of the benchmark's messages (:data:`SAMPLE`, or ``n`` if larger, evenly spaced,
in stream order), tokenised with the serving version's own tokenizer and truncation, cut into
micro-batches of ``n`` messages, and each micro-batch run as the service runs it: its rows split
by the service's own length grouping (:func:`services.support.tokens.length_groups`, with the
cost model of the provider measured and the service's ``max_rows_per_call``), each group padded
to its own longest message. The limit then times exactly the model calls the service makes for
micro-batches of that size; what the service adds (tokenising, decoding, Kafka) is the gap. The
batch size of a point is the micro-batch (messages per scorer call), not the rows of one graph call,
and the sweep ends at the service's ``max_batch_size``: it never runs a larger micro-batch (larger
ones still gain a little, from fuller length groups; raise the setting to measure them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer

from shared.models.providers import CPU
from shared.runtime.codec import DeadLetterRecord
from tools.bench.scoring import Feeds, ServiceHarness, as_records

logger = logging.getLogger(__name__)

SAMPLE = 256
"""Messages per timing pass at batch sizes up to it (evenly spaced over the benchmark's events)."""

TextBatches = Callable[[int, str], list[Feeds]]
"""``batches(n, provider)``: one timing pass of graph calls for micro-batches of ``n`` messages."""


def service_batches(texts: Sequence[str], tokenizer: Tokenizer, pad_id: int, max_rows: int,
                    sample: int = SAMPLE, buckets: bool = True) -> TextBatches:
    """The graph calls the support scorer makes for ``texts`` in micro-batches (module docstring)."""
    from services.support.tokens import CPU_COST, GPU_COST, Tokens, length_groups

    if not texts:
        raise ValueError("no messages to build text batches from")

    def batches(batch: int, provider: str = CPU) -> list[Feeds]:
        count = max(sample, batch)
        step = max(len(texts) / count, 1.0)
        tokens = Tokens.encode(tokenizer, [texts[int(i * step) % len(texts)] for i in range(count)])
        out: list[Feeds] = []
        for start in range(0, count, batch):
            rows = np.arange(start, min(start + batch, count))
            if buckets:
                groups = length_groups(tokens.lengths[rows], CPU_COST if provider == CPU else GPU_COST, max_rows)
            else:
                groups = [np.arange(len(rows))[k:k + max_rows] for k in range(0, len(rows), max_rows)]
            for group in groups:
                ids, mask = tokens.padded(rows[group], pad_id)
                out.append({"input_ids": ids, "attention_mask": mask})
        return out

    return batches


def message_texts(harness: ServiceHarness, pairs: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """The texts of the records that decode (dead letters never reach the model)."""
    decoded = (harness.decoder.decode(r) for r in as_records(pairs))
    return [str(getattr(event.value, "text", "")) for event in decoded if not isinstance(event, DeadLetterRecord)]


def text_batches(harness: ServiceHarness, pairs: Sequence[tuple[bytes, bytes]],
                 sample: int = SAMPLE) -> TextBatches | None:
    """The serving version's graph calls for ``pairs`` for a text scorer, else ``None``."""
    from services.support.scorer import SupportScorer

    scorer = harness.scorer
    if not isinstance(scorer, SupportScorer):
        return None
    text = scorer.text_pipeline(scorer.slot.current.manifest)
    settings = scorer.settings
    return service_batches(message_texts(harness, pairs), text.tokenizer, text.pad_id, settings.max_rows_per_call,
                           sample, settings.length_buckets)


def padding_share(batches: Sequence[Feeds]) -> float:
    """The share of padded positions in ``batches`` (0: every position is a real token)."""
    masks = [feeds["attention_mask"] for feeds in batches]
    total = sum(int(m.size) for m in masks)
    return 1.0 - sum(int(m.sum()) for m in masks) / max(total, 1)
