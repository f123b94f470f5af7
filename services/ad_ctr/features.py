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
from operator import attrgetter, itemgetter

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
    table = list(rows)
    out = np.empty((len(table), len(spec.fields)), dtype=np.int64)
    for j, field in enumerate(spec.fields):
        out[:, j] = column_ids(spec, j, [row.get(field) for row in table])
    return out


def column_ids(spec: FeatureSpec, j: int, values: Sequence[object]) -> np.ndarray:
    """Global ids (offset + bucket) of the values of the spec's ``j``-th field, ``int64 [len(values)]``.

    A column repeats a few values many times, so each distinct value is hashed once and the
    rest is a dictionary look-up. Values are told apart by ``==``: a column holds one type (a
    schema field, or CSV text), so equal values also format alike for :func:`bucket`.
    """
    field, buckets, offset = spec.fields[j], spec.buckets[j], spec.offsets[j]
    ids = {value: offset + bucket(field, value, buckets) for value in dict.fromkeys(values)}
    return np.fromiter(map(ids.__getitem__, values), dtype=np.int64, count=len(values))


REQUEST_SPEC = FeatureSpec(
    fields=("device", "slot", "site_or_app", "hour", "user_segment",
            "advertiser_id", "category", "ad_id", "creative_id"),
    buckets=(8, 16, 256, 24, 32, 1024, 64, 4096, 8192),
)  # fmt: skip
"""The default fields of an ad request's candidates (context first, then the ad)."""

CONTEXT_FIELDS = ("device", "slot", "site_or_app", "hour", "user_segment")
"""Fields of the request itself, the same for each of its candidates."""
AD_FIELDS = ("advertiser_id", "category", "ad_id", "creative_id")
"""Fields of one candidate ad."""
_AD_VALUES = itemgetter(*AD_FIELDS)


def candidate_rows(request: AdRequest) -> list[dict[str, object]]:
    """One feature row per candidate: the request's context joined with the candidate's ad."""
    context: dict[str, object] = {f: getattr(request, f) for f in CONTEXT_FIELDS}
    return [context | dict(zip(AD_FIELDS, _AD_VALUES(c), strict=True)) for c in request.candidates]


@dataclass(frozen=True, slots=True)
class CandidateColumns:
    """A batch of ad requests as columns: the context once per request, the ads once per candidate.

    The scorer's view of a batch: every transform reads a column, so no per-candidate row is built.
    Candidate columns list every request's candidates in order; ``counts`` says how many are whose.
    """

    counts: np.ndarray
    """``int64 [requests]``: each request's number of candidates."""
    context: dict[str, list[object]]
    """:data:`CONTEXT_FIELDS` -> one value per request."""
    ads: dict[str, list[object]]
    """:data:`AD_FIELDS` -> one value per candidate."""
    titles: list[str]
    bids: np.ndarray
    """``float64 [candidates]``."""

    @classmethod
    def of(cls, requests: Sequence[AdRequest]) -> CandidateColumns:
        counts = np.fromiter(map(len, map(attrgetter("candidates"), requests)), dtype=np.int64, count=len(requests))
        candidates = [c for r in requests for c in r.candidates]
        return cls(
            counts=counts,
            context={f: list(map(attrgetter(f), requests)) for f in CONTEXT_FIELDS},
            ads={f: list(map(itemgetter(f), candidates)) for f in AD_FIELDS},
            titles=list(map(itemgetter("title"), candidates)),
            bids=np.fromiter(map(itemgetter("bid"), candidates), dtype=np.float64, count=len(candidates)),
        )


class BucketMemo:
    """The global ids of one spec's field values, kept from batch to batch.

    The same ads, creatives and slots come back batch after batch, so a value is hashed once
    and then looked up. The ids are :func:`column_ids`' own (a memo, never a second hash); a
    field's memo is emptied when it would pass ``max_values``, so memory stays bounded.
    """

    def __init__(self, spec: FeatureSpec, max_values: int = 50_000) -> None:
        self.spec = spec
        self.max_values = max_values
        self._ids: list[dict[object, int]] = [{} for _ in spec.fields]

    def column(self, j: int, values: Sequence[object]) -> np.ndarray:
        """``column_ids(self.spec, j, values)``."""
        ids = self._ids[j]
        try:
            return np.fromiter(map(ids.__getitem__, values), dtype=np.int64, count=len(values))
        except KeyError:
            missing = [v for v in dict.fromkeys(values) if v not in ids]
            if len(ids) + len(missing) > self.max_values:
                ids.clear()
                missing = list(dict.fromkeys(values))
            ids.update(zip(missing, column_ids(self.spec, j, missing).tolist(), strict=True))
            return np.fromiter(map(ids.__getitem__, values), dtype=np.int64, count=len(values))


def encode_columns(spec: FeatureSpec, columns: CandidateColumns, memo: BucketMemo | None = None) -> np.ndarray:
    """``encode_rows(spec, rows)`` of every candidate row of a batch, built a column at a time.

    The scorer's path: a request's context is encoded once per request and repeated for each
    of its candidates, instead of once per candidate. A spec field that no request carries is
    the value ``None``, as in :func:`encode_rows`. ``memo`` (for ``spec``) saves re-hashing values
    seen in earlier batches.
    """
    if memo is not None and memo.spec != spec:
        raise ValueError("the memo belongs to another feature spec")

    def ids(j: int, values: Sequence[object]) -> np.ndarray:
        return memo.column(j, values) if memo is not None else column_ids(spec, j, values)

    out = np.empty((int(columns.counts.sum()), len(spec.fields)), dtype=np.int64)
    for j, field in enumerate(spec.fields):
        if field in CONTEXT_FIELDS:
            out[:, j] = np.repeat(ids(j, columns.context[field]), columns.counts)
        elif field in AD_FIELDS:
            out[:, j] = ids(j, columns.ads[field])
        else:
            out[:, j] = column_ids(spec, j, [None])[0]
    return out


def encode_requests(spec: FeatureSpec, requests: Sequence[AdRequest]) -> np.ndarray:
    """:func:`encode_columns` of ``requests``."""
    return encode_columns(spec, CandidateColumns.of(requests))


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
    return words + list(map("_".join, itertools.pairwise(words)))


def encode_titles(spec: TextSpec, titles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Titles to ``(ids int64 [n, max_tokens], mask float32 [n, max_tokens])``.

    Id 0 is padding; real tokens hash into ``1..buckets-1``. A title with no word
    characters gets one ``<empty>`` token so the mean pool never divides by zero.
    """
    tokens = [title_tokens(title)[: spec.max_tokens] or ["<empty>"] for title in titles]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    flat = [token.encode() for row in tokens for token in row]
    hashed = np.fromiter(map(zlib.crc32, flat), dtype=np.int64, count=len(flat))
    # Every token's (title, position), so the ids go into the padded matrix in one assignment.
    rows = np.repeat(np.arange(len(tokens)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ids = np.zeros((len(titles), spec.max_tokens), dtype=np.int64)
    mask = np.zeros((len(titles), spec.max_tokens), dtype=np.float32)
    ids[rows, cols] = 1 + hashed % (spec.buckets - 1)
    mask[rows, cols] = 1.0
    return ids, mask
