"""On the broker: one record the scorer raises on is dead-lettered and the stream goes on exactly as
without it; a scorer that raises on everything pauses and dead-letters nothing."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.runtime.echo import EchoScorer
from shared.runtime.retry import SCORER_ERROR
from shared.schemas import headers as h
from tests.support.echo import echo_settings, good
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.supervisor import collect, http_get, produce, service_in_thread, wait_until

pytestmark = pytest.mark.integration

POISON = "poison-7"


def lineage(record_headers: dict[str, bytes]) -> str:
    return (record_headers[h.SOURCE_PARTITION] + b":" + record_headers[h.SOURCE_OFFSET]).decode()


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_a_poison_record_is_dead_lettered_and_state_and_outputs_are_as_without_it(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, delivery: str
) -> None:
    topic = topic_factory(partitions=2)
    records = [good(i, keys=20) for i in range(400)]
    records.insert(230, (POISON.encode(), json.dumps({"id": POISON}).encode()))
    settings = echo_settings(kafka_bootstrap, topic, group_id_factory(), delivery=delivery,
                             retry_initial_backoff_s=0.1, retry_max_backoff_s=0.5)
    scorer = EchoScorer(stateful=True, fail_on_ids=frozenset({POISON}))
    with service_in_thread(settings, scorer) as app:
        assert wait_until(lambda: app.health.joined, 30)
        produce(kafka_bootstrap, topic, records)
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 400, timeout_s=60)
        assert wait_until(lambda: http_get(app.metrics_port, "/readyz")[0] == 200, 10)
        metrics = http_get(app.metrics_port, "/metrics")[1]
    dead = collect(kafka_bootstrap, [f"{topic}.dlq"], lambda rs: len(rs) >= 1, timeout_s=20)
    assert [(d.key, d.headers[h.ERROR_REASON], d.headers[h.ERROR_CLASS]) for d in dead] == [
        (POISON.encode(), SCORER_ERROR.encode(), b"ValueError")]
    assert POISON.encode() in dead[0].headers[h.ERROR_MESSAGE]
    assert re.search(rf'shopstream_events_dead_lettered_total\{{[^}}]*reason="{SCORER_ERROR}"[^}}]*\}} 1\.0',
                     metrics)

    assert len(out) == 400 and len({lineage(r.headers) for r in out}) == 400, "every good event once"
    counts: dict[str, list[int]] = {}
    for record in out:
        value = json.loads(record.value or b"{}")
        counts.setdefault(value["id"], []).append(value["count"])
    assert POISON not in counts
    expected = Counter(key.decode() for key, _ in records if key != POISON.encode())
    assert {key: sorted(seen) for key, seen in counts.items()} == {
        key: list(range(1, n + 1)) for key, n in expected.items()}, "each key counted 1..n: no failed try left a trace"


def test_a_scorer_failing_on_everything_after_it_worked_pauses_and_dead_letters_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    """The probe (an event that scored before) fails too, so no record is blamed."""
    topic = topic_factory(partitions=2)
    outage = tmp_path / "model-down"
    settings = echo_settings(kafka_bootstrap, topic, group_id_factory(),
                             retry_initial_backoff_s=0.1, retry_max_backoff_s=0.5)
    with service_in_thread(settings, EchoScorer(stateful=True, fail_while_file_exists=outage)) as app:
        assert wait_until(lambda: app.health.joined, 30)
        produce(kafka_bootstrap, topic, [good(i) for i in range(100)])
        collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 100, timeout_s=30)
        outage.touch()
        produce(kafka_bootstrap, topic, [good(i) for i in range(100, 400)])
        assert wait_until(lambda: app.health.failing, 15), "the outage must be noticed"
        time.sleep(6)  # tries of the whole batch, every halving and the lone first record, with probes
        assert http_get(app.metrics_port, "/readyz")[0] == 503
        metrics = http_get(app.metrics_port, "/metrics")[1]
        assert 'shopstream_paused{service="echo"} 1.0' in metrics
        outage.unlink()
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 400, timeout_s=60)
        assert wait_until(lambda: http_get(app.metrics_port, "/readyz")[0] == 200, 10)
    assert len({lineage(r.headers) for r in out}) == 400
    assert collect(kafka_bootstrap, [f"{topic}.dlq"], lambda rs: False, timeout_s=3) == []
