"""Memory stays bounded under a burst: the producer queue and the state store keep their limits."""

from __future__ import annotations

import threading
import time

import pytest

from shared.runtime.echo import EchoScorer
from tests.support.echo import echo_settings, good
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.supervisor import collect, produce, service_in_thread, wait_until

pytestmark = pytest.mark.integration

INFLIGHT_LIMIT = 500
BATCH = 100
KEYS_PER_PARTITION = 50
PARTITIONS = 2


def test_a_burst_is_absorbed_within_the_configured_bounds(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=PARTITIONS)
    burst = 20_000  # with 5,000 distinct keys: 10x the state limit and 40x the in-flight limit
    produce(kafka_bootstrap, topic, [good(i, keys=5_000) for i in range(burst)])
    settings = echo_settings(
        kafka_bootstrap, topic, group_id_factory(), max_inflight_messages=INFLIGHT_LIMIT, max_batch_size=BATCH,
        max_state_keys_per_partition=KEYS_PER_PARTITION,
    )
    peaks = {"inflight": 0, "state": 0}
    with service_in_thread(settings, EchoScorer(stateful=True)) as app:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                if app._delivery is not None and app.state is not None:
                    inflight = max(app._delivery.inflight(), app._delivery.tracker.pending_records())
                    peaks["inflight"] = max(peaks["inflight"], inflight)
                    peaks["state"] = max(peaks["state"], len(app.state))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert wait_until(lambda: app.health.joined, 30)
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= burst, timeout_s=180)
        stop.set()
        sampler.join()
        evictions = app.state.evictions if app.state is not None else 0
    print(f"\n[burst] events={burst} peak in-flight={peaks['inflight']} peak state keys={peaks['state']} "
          f"evictions={evictions}")
    assert len(out) == burst, "backpressure slows the service down; it never drops events"
    # one batch may be published after the last check before the pause: its scores, and for each
    # new key a changelog record plus the tombstone of the key it evicted
    assert peaks["inflight"] <= INFLIGHT_LIMIT + 3 * BATCH + 1
    assert peaks["state"] <= KEYS_PER_PARTITION * PARTITIONS
    assert evictions > 0
