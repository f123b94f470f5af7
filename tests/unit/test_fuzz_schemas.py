"""Hostile input against every input schema, through the runtime's decoder (no broker).

Each property starts from a valid event of one schema and breaks it in one way a hostile or
buggy producer would: wrong types, huge numbers, NaN/Inf, deep nesting, huge strings, invalid
UTF-8, unknown, missing or duplicated keys, wrong Kafka keys. The decoder must never raise;
every broken record must come back as a dead letter with a known reason and readable headers,
and the valid records around it must decode unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.scorer import Event, LoadContext, Scorer, ScoreResult
from shared.schemas import AdRequest, ClickEvent, PricingRequest, Transaction
from shared.schemas import headers as h
from shared.schemas.registry import TOPICS
from shared.schemas.support import SupportMessage
from tests.support.stubs import StubMessage

TS = 1_700_000_000_000
VALID: dict[type[BaseModel], dict[str, Any]] = {
    ClickEvent: dict(user_id="u1", session_id="s1", item_id=7, event_type="view", ts_ms=TS),
    AdRequest: dict(request_id="r1", user_id="u1", device="mobile", slot="top", site_or_app="app1", hour=3,
                    user_segment="s1", ts_ms=TS, candidates=[dict(ad_id="a1", advertiser_id="adv1",
                    category="skincare", creative_id="cr1", title="Glow Serum 30ml", bid=0.8)]),
    PricingRequest: dict(sku="sku1", category="cereal", current_price=3.49, unit_cost=1.2, stock=40,
                         competitor_prices=[3.29, 3.79], recent_units=120.0, week_of_year=12, day_of_week=2,
                         floor=2.0, ceiling=5.0, ts_ms=TS),
    Transaction: dict(txn_id="t1", user_id="u1", card_id="c1", amount=12.5, currency="USD", merchant_id="m1",
                      merchant_category="grocery", device_id="d1", ip_country="US", card_bin="411111",
                      channel="web", ts_ms=TS),
    SupportMessage: dict(message_id="m1", customer_id="c1", channel="chat", language="en",
                         text="my card payment was declined twice", ts_ms=TS),
}  # fmt: skip
KEY_FIELD = {spec.model: spec.key_field for spec in TOPICS.values() if spec.direction == "input"}
SCHEMAS = list(VALID)

MAX_BYTES = 100_000
SCHEMA_REASONS = {"malformed_json", "unknown_field", "missing_field", "non_finite_number", "invalid_value"}
KNOWN_REASONS = SCHEMA_REASONS | {"oversized", "invalid_utf8", "missing_value", "missing_key", "invalid_key",
                                  "key_mismatch"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class SchemaScorer(Scorer[BaseModel]):
    """Just enough of a service for the decoder: the schema and the key field."""

    input_schema: ClassVar[type[BaseModel]] = BaseModel
    output_schema: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self, schema: type[BaseModel]) -> None:
        self.schema = schema
        self.key_field = KEY_FIELD[schema]

    def load(self, context: LoadContext) -> None:
        """Nothing to load."""

    def score(self, batch: Sequence[Event[BaseModel]]) -> Sequence[ScoreResult]:
        raise AssertionError("the decoder never scores")

    def key_of(self, event: BaseModel) -> str | None:
        return str(getattr(event, self.key_field))


def decoder_for(schema: type[BaseModel]) -> RecordDecoder:
    scorer = SchemaScorer(schema)
    scorer.input_schema = schema  # type: ignore[misc]  # per-instance schema, read once by the decoder
    return RecordDecoder(scorer, "fuzz", MAX_BYTES, 500)


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, allow_nan=True).encode()


def key_of(schema: type[BaseModel], record: dict[str, Any]) -> bytes:
    """The Kafka key a correct producer would use (the valid example's when the field is gone)."""
    field = KEY_FIELD[schema]
    return str(record.get(field, VALID[schema][field])).encode()


def assert_dead_letter(out: Event[BaseModel] | DeadLetterRecord, reasons: set[str], raw: bytes) -> None:
    assert isinstance(out, DeadLetterRecord), f"accepted a bad record: {raw[:200]!r}"
    assert out.reason in reasons, f"reason {out.reason!r} not in {reasons} for {raw[:200]!r}"
    headers = dict(out.headers)
    assert headers[h.ERROR_REASON] == out.reason.encode()
    assert headers[h.ERROR_MESSAGE], "a dead letter must say what was wrong"
    assert len(headers[h.ERROR_MESSAGE] or b"") <= 500 * 4  # bounded (500 chars of UTF-8)
    assert out.value == raw, "the dead letter must carry the original bytes for redrive"


def assert_well_formed(out: Event[BaseModel] | DeadLetterRecord) -> None:
    """Whatever the input, the outcome is a finite event or a dead letter with a known reason."""
    if isinstance(out, DeadLetterRecord):
        assert out.reason in KNOWN_REASONS
        return
    numbers = [v for v in _leaves(out.value.model_dump()) if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


schemas = st.sampled_from(SCHEMAS)
hostile_values = st.one_of(
    st.just({"nested": {"deeper": [1, 2, 3]}}),  # an object where no field takes one
    st.integers(min_value=10**12, max_value=10**40).map(lambda n: n * 10**10),  # beyond every bound
    st.integers(max_value=-(10**15)),
    st.sampled_from([1e300, -1e300, float("nan"), float("inf"), float("-inf")]),
    st.text(min_size=300, max_size=3000),  # longer than any bounded string field
    st.just("x" * 5000),
)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_the_valid_example_decodes_with_its_key(schema: type[BaseModel]) -> None:
    record = VALID[schema]
    out = decoder_for(schema).decode(StubMessage(encode(record), key_of(schema, record)))
    assert isinstance(out, Event), out
    assert out.key == key_of(schema, record).decode()


@FUZZ
@given(schema=schemas, data=st.data(), value=hostile_values)
def test_a_hostile_value_in_any_field_is_dead_lettered(schema: type[BaseModel], data: st.DataObject,
                                                       value: Any) -> None:
    record = dict(VALID[schema])
    field = data.draw(st.sampled_from(sorted(set(record) - {KEY_FIELD[schema]})))
    record[field] = value
    raw = encode(record)
    out = decoder_for(schema).decode(StubMessage(raw, key_of(schema, record)))
    assert_dead_letter(out, SCHEMA_REASONS, raw)


@FUZZ
@given(schema=schemas, data=st.data())
def test_a_missing_required_field_or_an_unknown_one_is_dead_lettered(schema: type[BaseModel],
                                                                   data: st.DataObject) -> None:
    record = dict(VALID[schema])
    required = sorted(name for name, f in schema.model_fields.items() if f.is_required())
    if data.draw(st.booleans()):
        del record[data.draw(st.sampled_from(required))]
        reasons = {"missing_field"}
    else:
        record[data.draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in schema.model_fields))] = 1
        reasons = {"unknown_field"}
    raw = encode(record)
    out = decoder_for(schema).decode(StubMessage(raw, key_of(schema, record)))
    assert_dead_letter(out, reasons, raw)


@FUZZ
@given(schema=schemas, depth=st.integers(min_value=200, max_value=50_000), whole=st.booleans())
def test_deeply_nested_json_is_refused_without_a_recursion_error(schema: type[BaseModel], depth: int,
                                                                  whole: bool) -> None:
    nested = "[" * depth + "]" * depth
    if whole:
        raw = nested.encode()
    else:
        field = next(k for k in VALID[schema] if k != KEY_FIELD[schema])
        raw = encode(VALID[schema]).replace(f'"{field}": '.encode(), f'"{field}": {nested}, "_x": '.encode(), 1)
    out = decoder_for(schema).decode(StubMessage(raw, key_of(schema, VALID[schema])))
    assert_dead_letter(out, SCHEMA_REASONS | {"oversized"}, raw)


@FUZZ
@given(schema=schemas, token=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9" * 5000]))
def test_non_finite_and_out_of_range_number_literals_are_dead_lettered(schema: type[BaseModel], token: str) -> None:
    numeric = [k for k, v in VALID[schema].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    record = dict(VALID[schema])
    raw = encode(record).replace(f'"{numeric[0]}": {json.dumps(record[numeric[0]])}'.encode(),
                                 f'"{numeric[0]}": {token}'.encode(), 1)
    assert raw != encode(record)
    out = decoder_for(schema).decode(StubMessage(raw, key_of(schema, record)))
    assert_dead_letter(out, SCHEMA_REASONS, raw)


@FUZZ
@given(schema=schemas, junk=st.binary(min_size=1, max_size=8).filter(lambda b: not _is_utf8(b)),
       where=st.floats(min_value=0, max_value=1))
def test_invalid_utf8_anywhere_is_dead_lettered_as_invalid_utf8(schema: type[BaseModel], junk: bytes,
                                                                 where: float) -> None:
    good = encode(VALID[schema])
    cut = int(len(good) * where)
    raw = good[:cut] + junk + good[cut:]
    out = decoder_for(schema).decode(StubMessage(raw, key_of(schema, VALID[schema])))
    assert_dead_letter(out, {"invalid_utf8"}, raw)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(schema=schemas, key=st.one_of(st.none(), st.binary(max_size=20)))
def test_a_missing_non_utf8_or_mismatched_kafka_key_never_reaches_a_partition(schema: type[BaseModel],
                                                                              key: bytes | None) -> None:
    record = VALID[schema]
    expected = key_of(schema, record)
    out = decoder_for(schema).decode(StubMessage(encode(record), key))
    if key == expected:
        assert isinstance(out, Event)
        return
    assert_dead_letter(out, {"missing_key", "invalid_key", "key_mismatch"}, encode(record))


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_a_duplicated_entity_key_cannot_smuggle_a_record_into_another_owners_partition(
    schema: type[BaseModel],
) -> None:
    # JSON with a repeated name resolves to the last value (pydantic-core, like json.loads);
    # a producer keying by the first value must not get the record scored under the second.
    field = KEY_FIELD[schema]
    raw = encode(VALID[schema])[:-1] + f', "{field}": "mallory"}}'.encode()
    out = decoder_for(schema).decode(StubMessage(raw, key_of(schema, VALID[schema])))
    assert_dead_letter(out, {"key_mismatch"}, raw)
    accepted = decoder_for(schema).decode(StubMessage(raw, b"mallory"))
    assert isinstance(accepted, Event) and getattr(accepted.value, field) == "mallory"


@FUZZ
@given(schema=schemas, raw=st.binary(max_size=2000), key=st.one_of(st.none(), st.binary(max_size=70)),
       headers=st.lists(st.tuples(st.text(max_size=20), st.one_of(st.none(), st.binary(max_size=50))),
                        max_size=5))
def test_arbitrary_bytes_keys_and_headers_never_crash_the_decoder(
    schema: type[BaseModel], raw: bytes, key: bytes | None, headers: list[tuple[str, bytes | None]]
) -> None:
    out = decoder_for(schema).decode(StubMessage(raw, key, _headers=headers))
    assert_well_formed(out)


@FUZZ
@given(schema=schemas, data=st.data())
def test_a_mixed_stream_dead_letters_every_bad_record_and_decodes_every_good_one(
    schema: type[BaseModel], data: st.DataObject
) -> None:
    decoder = decoder_for(schema)
    good_ids = data.draw(st.lists(st.from_regex(r"[A-Za-z0-9_.:@/-]{1,64}", fullmatch=True), min_size=1,
                                  max_size=10, unique=True))
    bad = data.draw(st.lists(st.tuples(st.sampled_from(sorted(set(VALID[schema]) - {KEY_FIELD[schema]})),
                                       hostile_values), min_size=1, max_size=10))
    stream: list[tuple[bool, bytes, bytes]] = []
    for ident in good_ids:
        stream.append((True, encode(VALID[schema] | {KEY_FIELD[schema]: ident}), ident.encode()))
    for field, value in bad:
        stream.append((False, encode(VALID[schema] | {field: value}), key_of(schema, VALID[schema])))
    order = data.draw(st.permutations(range(len(stream))))
    outcomes = [(stream[i][0], decoder.decode(StubMessage(stream[i][1], stream[i][2], _offset=n)))
                for n, i in enumerate(order)]
    assert all(isinstance(out, Event) for ok, out in outcomes if ok)
    assert all(isinstance(out, DeadLetterRecord) and out.reason in SCHEMA_REASONS for ok, out in outcomes if not ok)


def test_every_input_topic_is_fuzzed() -> None:
    assert set(KEY_FIELD) == set(VALID)
