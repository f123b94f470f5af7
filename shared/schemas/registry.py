"""Which model travels on which topic, and the JSON Schema files generated from the models.

Regenerate the committed files after changing a model::

    python -m shared.schemas.registry            # writes schemas/json/<Model>.json
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from shared.schemas.ads import AdRequest, CtrScores
from shared.schemas.clickstream import ClickEvent, RecoScores
from shared.schemas.deadletter import DeadLetter
from shared.schemas.feedback import AdOutcome, FeedbackRecord, JoinedOutcome, PaymentOutcome, SalesOutcome
from shared.schemas.payments import FraudScore, Transaction
from shared.schemas.pricing import PriceForecast, PricingDecision, PricingRequest
from shared.schemas.support import SupportEscalation, SupportIntent, SupportMessage

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
JSON_SCHEMA_DIR = REPO_ROOT / "schemas" / "json"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic role: its default name, the record model and the field that is the Kafka key."""

    role: str
    default_topic: str
    model: type[BaseModel]
    key_field: str
    direction: Literal["input", "output"]


TOPICS: dict[str, TopicSpec] = {
    spec.role: spec
    for spec in (
        TopicSpec("clickstream", "clickstream.events", ClickEvent, "user_id", "input"),
        TopicSpec("reco_scores", "reco.scores", RecoScores, "user_id", "output"),
        TopicSpec("ad_requests", "ads.impressions", AdRequest, "request_id", "input"),
        TopicSpec("ctr_scores", "ads.ctr_scores", CtrScores, "request_id", "output"),
        TopicSpec("pricing_requests", "pricing.requests", PricingRequest, "sku", "input"),
        TopicSpec("pricing_decisions", "pricing.decisions", PricingDecision, "sku", "output"),
        TopicSpec("pricing_forecasts", "pricing.forecasts", PriceForecast, "sku", "output"),
        TopicSpec("transactions", "payments.transactions", Transaction, "user_id", "input"),
        TopicSpec("fraud_scores", "fraud.scores", FraudScore, "user_id", "output"),
        TopicSpec("fraud_alerts", "fraud.alerts", FraudScore, "user_id", "output"),
        TopicSpec("support_messages", "support.messages", SupportMessage, "customer_id", "input"),
        TopicSpec("support_intents", "support.intents", SupportIntent, "customer_id", "output"),
        TopicSpec("support_escalations", "support.escalations", SupportEscalation, "customer_id", "output"),
    )
}

EXTRA_MODELS: tuple[type[BaseModel], ...] = (
    DeadLetter, FeedbackRecord, AdOutcome, PaymentOutcome, SalesOutcome, JoinedOutcome,
)
"""Models that are not on a topic role of their own but get a JSON Schema file too. The feedback
topic's records are keyed by their service's key field, so no single key field names them."""


def by_topic(topic: str) -> TopicSpec:
    """The spec whose default topic name is ``topic`` (``KeyError`` if none)."""
    for spec in TOPICS.values():
        if spec.default_topic == topic:
            return spec
    raise KeyError(f"no schema registered for topic {topic!r}")


def all_models() -> list[type[BaseModel]]:
    """Every model with a JSON Schema file, de-duplicated, in a stable order."""
    seen: dict[str, type[BaseModel]] = {}
    for model in [s.model for s in TOPICS.values()] + list(EXTRA_MODELS):
        seen.setdefault(model.__name__, model)
    return list(seen.values())


def render(model: type[BaseModel]) -> str:
    """The JSON Schema text for ``model`` exactly as committed (stable key order, newline at end)."""
    schema = model.model_json_schema()
    schema["$id"] = f"{model.__name__}.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_json_schemas(out_dir: Path = JSON_SCHEMA_DIR) -> list[Path]:
    """Write ``<Model>.json`` for every model into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in all_models():
        path = out_dir / f"{model.__name__}.json"
        path.write_text(render(model), encoding="utf-8")
        paths.append(path)
    logger.info("wrote %d JSON Schema files to %s", len(paths), out_dir)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else JSON_SCHEMA_DIR
    for path in write_json_schemas(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
