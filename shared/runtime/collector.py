"""Python's cyclic garbage collector, run when the loop chooses rather than in the middle of a batch.

Left to itself, the collector runs a young collection every 700 net allocations (about every
few events) and, as the keyed state and the models grow the heap, full collections that walk
every live object: 20-60 ms pauses with a few hundred thousand state entries, 10-30 % of a
stateful scorer's CPU (in process, 20,000 simulated events at batch 256), and the tail of the
latency figures. Instead, the service process

* moves what loading made into the permanent generation, where no collection looks at it;
* collects the young generations once after each batch, then freezes what survived: whatever a
  batch left alive (new state values, caches) is never walked again, and the batch's own
  garbage cycles are gone before the freeze, so nothing the batch made is leaked;
* raises the automatic threshold so a batch's allocations rarely trigger a collection of their
  own (the one after the batch does that work once);
* once per ``full_interval_s`` unfreezes everything and runs one full collection, so garbage
  cycles formed later among frozen objects (an exception kept across batches, say) are freed.

Reference counting still frees every acyclic object the moment it is dropped, frozen or not:
replaced state values do not accumulate. Only the process's main thread manages the collector
(the freeze is process-wide; an app run in a test's thread leaves it alone).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD = 50_000
"""Net allocations before an automatic young collection: about a batch's worth, so the
collection after each batch normally does that work alone."""


class BatchCollector:
    def __init__(self, full_interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._full_interval_s = full_interval_s
        self._clock = clock
        self._next_full = 0.0
        self.managing = False
        self.full_collections = 0

    def start(self) -> None:
        """Before the first turn: freeze what loading made and take over the collector's timing."""
        self.managing = threading.current_thread() is threading.main_thread()
        if not self.managing:
            return
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
        self._next_full = self._clock() + self._full_interval_s

    def after_batch(self) -> None:
        """Collect what the batch left as garbage and put the rest out of later collections' way."""
        if not self.managing:
            return
        gc.collect(1)
        gc.freeze()
        if self._clock() >= self._next_full:
            self.collect_everything()

    def collect_everything(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.full_collections += 1
        self._next_full = self._clock() + self._full_interval_s
        logger.debug("full collection: %d objects freed in %.1f ms", freed, (time.perf_counter() - started) * 1000)
