"""Which keys a canary scores: a stable hash of the key, the same in every process and replica."""

from __future__ import annotations

from hashlib import blake2b

_SCALE = float(2**64)


def key_fraction(key: str) -> float:
    """The key's place in [0, 1): uniform over keys, stable across processes (unlike ``hash()``,
    which is salted per process), so every instance and every restart sends a key the same way."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") / _SCALE


def in_canary(key: str, share: float) -> bool:
    """Whether the canary scores ``key``: raising ``share`` only adds keys (a key once in stays in)."""
    return share > 0.0 and key_fraction(key) < share
