"""A seeded, deterministic simulated shop with known ground truth.

Streams (``clickstream``, ``ads``, ``pricing``, ``payments``, ``support``) yield ``(event dict, truth dict)``
rows; events validate against :mod:`shared.schemas`. Start with :func:`make_stream`.
"""

from sim.registry import STREAMS, TOPIC_OF_STREAM, iter_json, iter_records, make_stream, world_for
from sim.stream import SimStream
from sim.world import World, WorldConfig

__all__ = [
    "STREAMS",
    "TOPIC_OF_STREAM",
    "SimStream",
    "World",
    "WorldConfig",
    "iter_json",
    "iter_records",
    "make_stream",
    "world_for",
]
