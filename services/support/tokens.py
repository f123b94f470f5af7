"""Text → padded token tensors, a batch at a time, in groups of similar lengths.

The whole batch is tokenised in one ``Tokenizer.encode_batch`` call (the tokenizers library
splits it over its Rust threads), truncated at the version's ``max_length``. The rows are then
run in groups of similar token lengths, each padded (on the right, attention mask 0) only to its
own longest row: a batch of short questions with one long complaint no longer pads every
question to the complaint's length. :func:`length_groups` picks the groups that cost least under
a simple cost model (a call's overhead against each row's padded positions); an encoder's output
for a row does not depend on right padding behind its attention mask, up to float rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

logger = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class CallCost:
    """What one graph call costs: per call, per row, and per padded position of a row (only the
    ratios matter: how much padding a saved call is worth)."""

    call_us: float
    row_us: float
    position_us: float


CPU_COST = CallCost(call_us=2000.0, row_us=100.0, position_us=170.0)
"""all-MiniLM-L6 with a 77-way head, ONNX Runtime 1.31 on one CPU thread (a 2-core VM): a call of
one 8-token row 3.3 ms, rows of 8/16/32/64 tokens about 1.4/2.5/5.0/11 ms each in calls of 16-64."""
GPU_COST = CallCost(call_us=1000.0, row_us=1.0, position_us=0.7)
"""An estimate until measured on a GPU host: there a call's launch and copies outweigh padding."""


def load_tokenizer(data: bytes, max_length: int) -> Tokenizer:
    """A tokenizer from its ``tokenizer.json`` bytes, truncating at ``max_length``, never padding."""
    tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def pad_id_of(tokenizer: Tokenizer, preprocessing: dict[str, object]) -> int:
    """The padding token: the manifest's ``pad_token_id``, else ``[PAD]``'s id, else 0."""
    given = preprocessing.get("pad_token_id")
    if isinstance(given, int):
        return given
    found = tokenizer.token_to_id("[PAD]")
    return found if found is not None else 0


@dataclass(frozen=True, slots=True)
class Tokens:
    """A batch's token ids, flat, with each row's length (rows in batch order)."""

    flat: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray

    @classmethod
    def encode(cls, tokenizer: Tokenizer, texts: Sequence[str]) -> Tokens:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=True)
        ids = [e.ids for e in encodings]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=int(lengths.sum()))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        return cls(flat, lengths, starts)

    def padded(self, rows: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)`` of ``rows``, right-padded to their longest row."""
        lengths = self.lengths[rows]
        width = max(int(lengths.max(initial=0)), 1)
        mask = np.arange(width)[None, :] < lengths[:, None]
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        # positions of each picked row's tokens in the flat array, row-major like mask's True cells
        take = np.repeat(self.starts[rows], lengths) + (np.arange(int(lengths.sum())) - np.repeat(
            np.cumsum(lengths) - lengths, lengths))
        ids[mask] = self.flat[take]
        return ids, mask.astype(np.int64)


def length_groups(lengths: np.ndarray, cost: CallCost = CPU_COST, max_rows: int = 1 << 30) -> list[np.ndarray]:
    """Row indices per group, shortest group first, that cost least under the cost model.

    Exact, by dynamic programming over the distinct lengths (at most ``max_length`` of them); a
    group larger than ``max_rows`` is then split into consecutive chunks of its sorted rows.
    """
    order = np.argsort(lengths, kind="stable")
    distinct, counts = np.unique(lengths, return_counts=True)
    before = np.concatenate(([0], np.cumsum(counts))).tolist()
    best, cut = [0.0], [0]
    for j in range(1, len(distinct) + 1):
        row = cost.row_us + cost.position_us * float(distinct[j - 1])
        least, start = min((best[i] + cost.call_us + (before[j] - before[i]) * row, i) for i in range(j))
        best.append(least)
        cut.append(start)
    bounds, j = [], len(distinct)
    while j:
        bounds.append((before[cut[j]], before[j]))
        j = cut[j]
    return [order[a:b][k : k + max_rows] for a, b in reversed(bounds) for k in range(0, b - a, max_rows)]
