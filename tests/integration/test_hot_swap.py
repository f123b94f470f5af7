"""Hot swap under load: a new model version takes over between batches, a corrupted one is refused."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from pydantic import BaseModel

from shared.models.repository import ModelRepository
from shared.models.slot import ModelSlot
from shared.runtime.echo import EchoEvent, EchoScore
from shared.runtime.scorer import Event, LoadContext, ModelInfo, Output, Scored, Scorer, ScoreResult
from shared.schemas import headers as h
from tests.support.echo import echo_settings, good
from tests.support.factories import GroupIdFactory, TopicFactory
from tests.support.models import LINEAR_INPUTS, LINEAR_OUTPUTS, publish_linear
from tools.supervisor import collect, http_get, produce, service_in_thread, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class LinearScorer(Scorer[EchoEvent]):
    """Scores echo events with the repository's linear model, hot-swapping between batches."""

    input_schema: ClassVar[type[BaseModel]] = EchoEvent
    output_schema: ClassVar[type[BaseModel]] = EchoScore

    def __init__(self, models: Path) -> None:
        self.models = models

    def load(self, context: LoadContext) -> None:
        self.slot = ModelSlot(ModelRepository(self.models), "linear", poll_interval_s=0.3, warm_up_batches=(1, 8),
                              expected_inputs=LINEAR_INPUTS, expected_outputs=LINEAR_OUTPUTS,
                              metrics=context.model_metrics)  # fmt: skip
        self.slot.load()

    @property
    def model_info(self) -> ModelInfo:
        return self.slot.model_info

    def key_of(self, event: EchoEvent) -> str | None:
        return event.id

    def score(self, batch: Sequence[Event[EchoEvent]]) -> Sequence[ScoreResult]:
        features = np.array([[e.value.value, 1.0, 0.5, -0.5] for e in batch], dtype=np.float32)
        scores = next(iter(self.slot.run({"features": features}).values())).reshape(-1)
        return [Scored([Output(EchoScore(id=e.value.id, score=float(s)))]) for e, s in zip(batch, scores, strict=True)]

    def between_batches(self) -> None:
        self.slot.maybe_swap()


def test_hot_swap_under_load_loses_nothing_and_refuses_a_corrupted_version(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    repository = ModelRepository(tmp_path / "models")
    publish_linear(repository, seed=1)
    topic = topic_factory(partitions=3)
    total = 12_000
    settings = echo_settings(kafka_bootstrap, topic, group_id_factory())
    scorer = LinearScorer(tmp_path / "models")
    with service_in_thread(settings, scorer) as app:
        assert wait_until(lambda: app.health.joined, 30)

        def stream() -> None:
            for chunk in range(12):
                produce(kafka_bootstrap, topic, [good(i) for i in range(chunk * 1000, (chunk + 1) * 1000)])
                time.sleep(0.3)

        producer = threading.Thread(target=stream)
        producer.start()
        time.sleep(1.5)
        publish_linear(repository, seed=2)  # v0002 while events flow
        assert wait_until(lambda: scorer.model_info.version == "v0002", 30)
        corrupted = publish_linear(repository, seed=3)  # v0003, then damaged on disk
        model_file = repository.path("linear", corrupted.version) / "model.onnx"
        model_file.write_bytes(model_file.read_bytes()[:-8] + b"tampered")
        producer.join()
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= total, timeout_s=90)
        assert wait_until(lambda: "v0003" in scorer.slot.refused, 10)
        metrics = http_get(app.metrics_port, "/metrics")[1]
    sources = Counter((r.headers[h.SOURCE_PARTITION], r.headers[h.SOURCE_OFFSET]) for r in out)
    assert len(sources) == total, "every event is scored"
    assert max(sources.values()) == 1, "no event is scored twice across the swap"
    versions = Counter(r.headers[h.MODEL_VERSION].decode() for r in out)
    assert set(versions) == {"v0001", "v0002"} and versions["v0002"] > 0
    for partition in {r.partition for r in out}:
        seen = [r.headers[h.MODEL_VERSION] for r in sorted(out, key=lambda r: r.offset) if r.partition == partition]
        assert seen == sorted(seen), "a partition never goes back to the old version"
    assert re.search(r'shopstream_model_load_failures_total\{reason="checksum",service="echo"\} 1\.0', metrics)
    assert scorer.model_info.version == "v0002", "the old version keeps serving after a refusal"
