"""``shopstream produce pricing --feedback-topic``: units sold at the price the pricing service decided.

The real pricing service scores the simulated requests; the producer reads its decisions and
publishes one sales outcome per decided request, at the decided price. A decision left on the
topic by an earlier run (same seed, same key and event time) is not taken for this run's.
"""

from __future__ import annotations

import json
import threading

import pytest

from services.registry import load_service
from shared.schemas.feedback import FeedbackRecord, SalesOutcome
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from sim import make_stream
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.cli.main import main
from tools.supervisor import REPO_ROOT, collect, produce, service_in_thread

pytestmark = pytest.mark.integration

EVENTS = 30


def test_sales_outcomes_follow_the_services_decisions(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    requests, decisions, forecasts, feedback = (topic_factory(partitions=2) for _ in range(4))
    first, _ = next(make_stream("pricing", seed=7).iter_dicts(1))
    stale = {"sku": first["sku"], "event_ts_ms": first["ts_ms"], "recommended_price": 999.0}
    produce(kafka_bootstrap, decisions, [(first["sku"].encode(), json.dumps(stale).encode())])

    settings = load_service("pricing").settings_class(
        input_topic=requests, output_topic=decisions, forecast_topic=forecasts, config_topic=None,
        group_id=group_id_factory(), changelog_topic=f"{requests}.changelog", models_dir=REPO_ROOT / "models",
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), metrics=MetricsSettings(host="127.0.0.1", port=0),
        runtime=RuntimeSettings(session_timeout_ms=6000), execution_providers=["cpu"],
    )  # fmt: skip
    codes: list[int] = []
    args = ["produce", "pricing", "--count", str(EVENTS), "--rate", "0", "--topic", requests, "--quiet",
            "--feedback-topic", feedback, "--decisions-topic", decisions, "--outcome-delay-scale", "0.1",
            "-b", kafka_bootstrap]  # fmt: skip
    with service_in_thread(settings, load_service("pricing").create_scorer(settings)):
        producer = threading.Thread(target=lambda: codes.append(main(args)))
        producer.start()
        producer.join(60)
    assert codes == [0]

    out = collect(kafka_bootstrap, [decisions, feedback], lambda rs: len(rs) >= 2 * EVENTS + 1, timeout_s=20)
    decided = {(d["sku"], d["event_ts_ms"]): d["recommended_price"]
               for d in (json.loads(r.value or b"") for r in out if r.topic == decisions)}  # fmt: skip
    sales = [FeedbackRecord.model_validate_json(r.value or b"") for r in out if r.topic == feedback]
    assert len(sales) == EVENTS and {s.service for s in sales} == {"pricing"}
    for record, outcome in ((s, SalesOutcome.model_validate(s.record)) for s in sales):
        assert record.kind == "outcome" and outcome.price == decided[outcome.sku, outcome.event_ts_ms] != 999.0
