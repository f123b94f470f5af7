"""A text model's batches for the model limit: real messages, tokenised as the service does.

Tiling one captured call would time a single sequence length. A text model's cost follows its
messages' token lengths and the padding of each batch, so at every batch size the limit runs the
same sample of the benchmark's messages (:data:`SAMPLE`, or the batch size if larger), tokenised
with the serving version's own tokenizer and truncation (:class:`services.support.tokens.Tokens`),
sorted by token length and cut into batches of that many rows, each right-padded to its own
longest message. That is length bucketing at its best (the least padding any grouping of these
messages can have), so the limit is an upper bound on what the service's own grouping, within
each of its micro-batches, can reach. Tokenising is not timed, as no feature code is in the other
services' model limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer

from shared.runtime.codec import DeadLetterRecord
from tools.bench.scoring import Feeds, ServiceHarness, as_records

logger = logging.getLogger(__name__)

SAMPLE = 256
"""Messages per timing pass at batch sizes up to it (evenly spaced over the benchmark's events)."""


def length_bucketed(texts: Sequence[str], tokenizer: Tokenizer, pad_id: int,
                    sample: int = SAMPLE) -> Callable[[int], list[Feeds]]:
    """``batches(n)``: ``max(sample, n)`` of ``texts`` (evenly spaced, cycling) as length-sorted
    batches of ``n`` rows, each padded to its longest row."""
    from services.support.tokens import Tokens

    if not texts:
        raise ValueError("no messages to build text batches from")

    def batches(batch: int) -> list[Feeds]:
        count = max(sample, batch)
        step = max(len(texts) / count, 1.0)
        chosen = [texts[int(i * step) % len(texts)] for i in range(count)]
        tokens = Tokens.encode(tokenizer, chosen)
        order = np.argsort(tokens.lengths, kind="stable")
        out: list[Feeds] = []
        for start in range(0, count, batch):
            ids, mask = tokens.padded(order[start:start + batch], pad_id)
            out.append({"input_ids": ids, "attention_mask": mask})
        return out

    return batches


def message_texts(harness: ServiceHarness, pairs: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """The texts of the records that decode (dead letters never reach the model)."""
    decoded = (harness.decoder.decode(r) for r in as_records(pairs))
    return [str(getattr(event.value, "text", "")) for event in decoded if not isinstance(event, DeadLetterRecord)]


def text_batches(harness: ServiceHarness, pairs: Sequence[tuple[bytes, bytes]],
                 sample: int = SAMPLE) -> Callable[[int], list[Feeds]] | None:
    """The serving version's length-bucketed batches of ``pairs`` for a text scorer, else ``None``."""
    from services.support.scorer import SupportScorer

    scorer = harness.scorer
    if not isinstance(scorer, SupportScorer):
        return None
    text = scorer.text_pipeline(scorer.slot.current.manifest)
    return length_bucketed(message_texts(harness, pairs), text.tokenizer, text.pad_id, sample)


def padding_share(batches: Sequence[Feeds]) -> float:
    """The share of padded positions in ``batches`` (0: every position is a real token)."""
    masks = [feeds["attention_mask"] for feeds in batches]
    total = sum(int(m.size) for m in masks)
    return 1.0 - sum(int(m.sum()) for m in masks) / max(total, 1)
