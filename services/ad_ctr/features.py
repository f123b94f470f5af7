"""Feature engineering shared by training (``export/ad_ctr``) and serving (the scorer).

There is exactly one implementation of each transform here, so a model never sees
features at serving time that were built differently from the ones it was trained on.

* Categorical fields are hashed into per-field buckets with CRC32 (stable across
  processes and Python versions, unlike ``hash()``), then offset into one shared
  embedding table.
* Creative titles are turned into hashed word and word-bigram ids for the small
  distilled text encoder (no vocabulary file, no tokenizer library at run time).
"""

from __future__ import annotations

import itertools
import logging
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.schemas.ads import AdRequest

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """The categorical fields a model reads, each hashed into its own bucket range."""

    fields: tuple[str, ...]
    buckets: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.fields) != len(self.buckets) or not self.fields:
            raise ValueError("fields and buckets must be non-empty and of equal length")
        if min(self.buckets) < 1:
            raise ValueError("every field needs at least one bucket")

    @property
    def offsets(self) -> tuple[int, ...]:
        out, acc = [], 0
        for size in self.buckets:
            out.append(acc)
            acc += size
        return tuple(out)

    @property
    def vocab_size(self) -> int:
        return sum(self.buckets)

    def to_dict(self) -> dict[str, list[str] | list[int]]:
        return {"fields": list(self.fields), "buckets": list(self.buckets)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[object]]) -> FeatureSpec:
        return cls(tuple(str(f) for f in data["fields"]), tuple(int(str(b)) for b in data["buckets"]))


def bucket(field: str, value: object, buckets: int) -> int:
    """The bucket of one field value; the field name salts the hash so fields do not collide alike."""
    return zlib.crc32(f"{field}\x1f{value}".encode()) % buckets


def encode_rows(spec: FeatureSpec, rows: Iterable[Mapping[str, object]]) -> np.ndarray:
    """Rows of ``field -> value`` to an ``int64 [n, n_fields]`` array of global embedding ids.

    A missing field is encoded as the value ``None`` (its own bucket), not an error,
    so optional context (e.g. no user segment) still scores.
    """
    offsets = spec.offsets
    encoded = [
        [off + bucket(f, row.get(f), n) for f, n, off in zip(spec.fields, spec.buckets, offsets, strict=True)]
        for row in rows
    ]
    return np.asarray(encoded, dtype=np.int64).reshape(-1, len(spec.fields))


REQUEST_SPEC = FeatureSpec(
    fields=("device", "slot", "site_or_app", "hour", "user_segment",
            "advertiser_id", "category", "ad_id", "creative_id"),
    buckets=(8, 16, 256, 24, 32, 1024, 64, 4096, 8192),
)  # fmt: skip
"""The default fields of an ad request's candidates (context first, then the ad)."""


def candidate_rows(request: AdRequest) -> list[dict[str, object]]:
    """One feature row per candidate: the request's context joined with the candidate's ad."""
    context: dict[str, object] = {
        "device": request.device, "slot": request.slot, "site_or_app": request.site_or_app,
        "hour": request.hour, "user_segment": request.user_segment,
    }  # fmt: skip
    return [
        context | {"advertiser_id": c.advertiser_id, "category": c.category, "ad_id": c.ad_id,
                   "creative_id": c.creative_id}
        for c in request.candidates
    ]


@dataclass(frozen=True, slots=True)
class TextSpec:
    """How creative titles become fixed-length hashed token ids for the text encoder."""

    buckets: int = 8192
    max_tokens: int = 24

    def to_dict(self) -> dict[str, int]:
        return {"buckets": self.buckets, "max_tokens": self.max_tokens}


def title_tokens(title: str) -> list[str]:
    """Lower-cased words plus word bigrams, in order."""
    words = _WORD.findall(title.lower())
    return words + [f"{a}_{b}" for a, b in itertools.pairwise(words)]


def encode_titles(spec: TextSpec, titles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Titles to ``(ids int64 [n, max_tokens], mask float32 [n, max_tokens])``.

    Id 0 is padding; real tokens hash into ``1..buckets-1``. A title with no word
    characters gets one ``<empty>`` token so the mean pool never divides by zero.
    """
    ids = np.zeros((len(titles), spec.max_tokens), dtype=np.int64)
    mask = np.zeros((len(titles), spec.max_tokens), dtype=np.float32)
    for i, title in enumerate(titles):
        tokens = title_tokens(title)[: spec.max_tokens] or ["<empty>"]
        for j, token in enumerate(tokens):
            ids[i, j] = 1 + zlib.crc32(token.encode()) % (spec.buckets - 1)
            mask[i, j] = 1.0
    return ids, mask
