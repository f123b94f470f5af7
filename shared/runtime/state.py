"""Keyed state kept in memory per input partition and backed by a compacted changelog topic.

The runtime owns the Kafka side: after each scored batch it takes the changed keys
(:meth:`StateStore.drain_changes`) and produces them to the changelog partition with the same
number as the input partition, in the same delivery unit as the scores (inside the transaction
in exactly-once mode). On assignment it restores a partition by replaying its changelog
partition (:meth:`StateStore.apply_changelog`). A deleted key is written as a tombstone.

Writes are transactional per batch: between :meth:`StateStore.begin` and :meth:`StateStore.commit`
every ``put`` and ``delete`` is staged, reads see the batch's own staged writes, and
:meth:`StateStore.rollback` forgets them, so a batch that is retried after the scorer raised sees
the state exactly as it was before the failed try (:func:`shared.runtime.scoring.score_batch`).
Values returned by ``get`` are shared with the store: treat them as read-only and ``put`` a new dict.

A value is a JSON dict (written to the changelog with orjson) or, for a scorer with a binary
state layout, ``bytes`` stored and written as they are. Binary values start with a byte below
0x09 (a layout's version byte), which no JSON text starts with: that is how a restore tells them
apart, so a changelog that holds both (a layout changed from JSON to binary) restores.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

JsonDict = dict[str, Any]
StateValue = JsonDict | bytes
"""A key's state: a JSON dict, or bytes that start with a byte below 0x09 (see the module docstring)."""


def is_binary(raw: bytes) -> bool:
    """Whether a changelog value is a binary state (JSON starts with whitespace or a value's first character)."""
    return bool(raw) and raw[0] < 0x09


@dataclass(frozen=True, slots=True)
class StateChange:
    """One key's new value (``None`` = deleted) for the changelog."""

    partition: int
    key: str
    value: bytes | None


class StateStore:
    """Per-partition key → value (JSON dict or binary) maps, bounded per partition in keys and in bytes (LRU eviction).

    Eviction forgets the least recently used key in memory and in the changelog (tombstone),
    so neither a burst of new keys nor values that keep growing can grow memory without bound.
    A key's bytes are its changelog record's (key + encoded value), known once it has been
    encoded (:meth:`drain_changes`) or restored, so the byte bound is enforced there.
    """

    def __init__(self, max_keys_per_partition: int = 1_000_000, max_bytes_per_partition: int | None = None) -> None:
        self._max_keys = max_keys_per_partition
        self._max_bytes = max_bytes_per_partition
        self._partitions: dict[int, OrderedDict[str, StateValue]] = {}
        self._sizes: dict[int, dict[str, int]] = {}
        """partition → key → bytes of its last encoded value (key included)."""
        self._bytes: Counter[int] = Counter()
        """partition → sum of its keys' sizes."""
        self._dirty: dict[tuple[int, str], bool] = {}
        self._staged: dict[tuple[int, str], StateValue | None] | None = None
        """The open batch's writes (``None`` = deleted), or ``None`` outside a batch."""
        self.evicted: Counter[str] = Counter()
        """Keys evicted so far, by the bound that evicted them: ``keys`` or ``bytes``."""

    # -- batch transactions ------------------------------------------------------------------

    def begin(self) -> None:
        """Start staging writes for one batch (a previous uncommitted batch is discarded)."""
        self._staged = {}

    def commit(self) -> None:
        """Apply the staged writes in order; they reach the changelog with this batch."""
        staged, self._staged = self._staged, None
        for (partition, key), value in (staged or {}).items():
            if value is None:
                self.delete(partition, key)
            else:
                self.put(partition, key, value)

    def rollback(self) -> None:
        """Forget the staged writes: the store is as it was at :meth:`begin`."""
        self._staged = None

    def savepoint(self) -> dict[tuple[int, str], StateValue | None] | None:
        """The open batch's writes so far, to :meth:`roll_back_to` after a pass whose writes must not
        count (a shadow candidate scores the batch against the same state, then its writes go)."""
        return None if self._staged is None else dict(self._staged)

    def roll_back_to(self, savepoint: dict[tuple[int, str], StateValue | None] | None) -> None:
        if self._staged is not None:
            self._staged = {} if savepoint is None else dict(savepoint)

    @property
    def staging(self) -> bool:
        return self._staged is not None

    # -- reads and writes -----------------------------------------------------------------------

    def get(self, partition: int, key: str) -> JsonDict | None:
        """The key's JSON state (the open batch's staged write first), or ``None``. Marks the key recently
        used. ``TypeError`` for a binary value: a scorer with a binary layout reads :meth:`get_value`."""
        value = self.get_value(partition, key)
        if isinstance(value, bytes):
            raise TypeError(f"state of {key!r} is binary: read it with get_value()")
        return value

    def get_value(self, partition: int, key: str) -> StateValue | None:
        """The key's state, JSON dict or bytes, as :meth:`get` otherwise."""
        if self._staged is not None and (partition, key) in self._staged:
            return self._staged[(partition, key)]
        entries = self._partitions.get(partition)
        if entries is None or key not in entries:
            return None
        entries.move_to_end(key)
        return entries[key]

    def put(self, partition: int, key: str, value: StateValue) -> None:
        """Set the key's state; it reaches the changelog with the current batch. ``ValueError`` for
        bytes that a restore would not tell from JSON."""
        if isinstance(value, bytes) and not is_binary(value):
            raise ValueError(f"binary state of {key!r} must start with a version byte below 0x09")
        if self._staged is not None:
            self._staged.pop((partition, key), None)  # re-insert: commit applies writes in order
            self._staged[(partition, key)] = value
            return
        entries = self._partitions.setdefault(partition, OrderedDict())
        entries[key] = value
        entries.move_to_end(key)
        self._dirty[(partition, key)] = True
        while len(entries) > self._max_keys:
            evicted, _ = entries.popitem(last=False)
            self._forget_size(partition, evicted)
            self._dirty[(partition, evicted)] = False
            self.evicted["keys"] += 1

    def delete(self, partition: int, key: str) -> None:
        if self._staged is not None:
            self._staged.pop((partition, key), None)
            self._staged[(partition, key)] = None
            return
        entries = self._partitions.get(partition)
        if entries is not None and entries.pop(key, None) is not None:
            self._forget_size(partition, key)
            self._dirty[(partition, key)] = False

    def drain_changes(self) -> list[StateChange]:
        """Changed keys since the last drain, as changelog records (tombstones for deletions and
        for the keys the byte bound evicts)."""
        changes = []
        for (partition, key), present in self._dirty.items():
            entries = self._partitions.get(partition)
            value = entries.get(key) if present and entries is not None else None
            encoded = (value if value is None or isinstance(value, bytes)
                       else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))  # fmt: skip
            if encoded is not None:
                self._set_size(partition, key, len(key.encode()) + len(encoded))
            changes.append(StateChange(partition, key, encoded))
        for partition in {partition for partition, _ in self._dirty}:
            changes.extend(StateChange(partition, key, None) for key in self._evict_bytes(partition))
        self._dirty.clear()
        return changes

    def _set_size(self, partition: int, key: str, size: int) -> None:
        sizes = self._sizes.setdefault(partition, {})
        self._bytes[partition] += size - sizes.get(key, 0)
        sizes[key] = size

    def _forget_size(self, partition: int, key: str) -> None:
        size = self._sizes.get(partition, {}).pop(key, 0)
        self._bytes[partition] -= size

    def _evict_bytes(self, partition: int) -> list[str]:
        """Evict least recently used keys while the partition holds more than the byte bound."""
        entries = self._partitions.get(partition)
        evicted: list[str] = []
        while self._max_bytes is not None and entries and self._bytes[partition] > self._max_bytes:
            key, _ = entries.popitem(last=False)
            self._forget_size(partition, key)
            evicted.append(key)
        self.evicted["bytes"] += len(evicted)
        return evicted

    @property
    def evictions(self) -> int:
        return sum(self.evicted.values())

    def bytes_held(self) -> int:
        """Bytes of every key's last encoded value (the changelog's live size, as restored)."""
        return sum(self._bytes.values())

    def apply_changelog(self, partition: int, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Replay changelog ``(key, value)`` records into a partition; returns keys restored."""
        entries = self._partitions.setdefault(partition, OrderedDict())
        for raw_key, raw_value in records:
            if raw_key is None:
                continue
            key = raw_key.decode()
            if raw_value is None:
                if entries.pop(key, None) is not None:
                    self._forget_size(partition, key)
            else:
                entries[key] = raw_value if is_binary(raw_value) else orjson.loads(raw_value)
                entries.move_to_end(key)
                self._set_size(partition, key, len(raw_key) + len(raw_value))
        while len(entries) > self._max_keys:
            evicted, _ = entries.popitem(last=False)
            self._forget_size(partition, evicted)
        self._evict_bytes(partition)
        return len(entries)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions (their changelog keeps them for the next owner)."""
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._sizes.pop(partition, None)
            self._bytes.pop(partition, None)
            for dirty_key in [k for k in self._dirty if k[0] == partition]:
                del self._dirty[dirty_key]

    def snapshot(self, partition: int) -> dict[str, Any]:
        """A copy of one partition's state (tests and debugging): JSON dicts, or bytes for a binary layout."""
        return dict(self._partitions.get(partition, {}))

    def __bool__(self) -> bool:
        # A store is present even when empty: `if store:` must not read as "no state store"
        # (and must not count every key, as __len__ would).
        return True

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._partitions.values())
