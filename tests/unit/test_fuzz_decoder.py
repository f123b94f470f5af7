"""Raw bytes through the runtime's decoder (the echo service's schema): no crash, cheap size limits.

The size check comes before any parsing, so an oversized record (or what a compression bomb
expands to) is refused in microseconds. A dead letter too big to publish (over ~1 MB, the
producer's and broker's ``message.max.bytes``) carries only a bounded prefix: otherwise the
service would crash on the same record after every restart. Smaller ones keep every byte.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from services.registry import load_service
from shared.kafka.message import MessageLike
from shared.runtime.codec import DLQ_MAX_RECORD_BYTES, OVERSIZED_KEEP_BYTES, DeadLetterRecord, RecordDecoder
from shared.runtime.echo import EchoScorer
from shared.runtime.scorer import Event
from shared.schemas import headers as h
from tests.support import golden
from tests.support.stubs import StubMessage

LIMIT = 1_000_000
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decoder() -> RecordDecoder:
    return RecordDecoder(EchoScorer(), "echo", LIMIT, 500)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(raw=st.binary(max_size=4096), key=st.one_of(st.none(), st.binary(max_size=100)))
def test_arbitrary_bytes_never_raise_and_become_an_event_or_a_reasoned_dead_letter(raw: bytes,
                                                                                   key: bytes | None) -> None:
    out = decoder().decode(StubMessage(raw, key))
    if isinstance(out, DeadLetterRecord):
        assert dict(out.headers)[h.ERROR_REASON] == out.reason.encode() and out.reason
    else:
        assert out.key == (key or b"").decode()


@FUZZ
@given(document=json_values, key=st.text(min_size=1, max_size=64))
def test_arbitrary_json_documents_never_raise(document: object, key: str) -> None:
    raw = json.dumps(document, allow_nan=True).encode()
    out = decoder().decode(StubMessage(raw, key.encode()))
    assert isinstance(out, DeadLetterRecord | Event)
    if isinstance(out, Event):  # only a real echo event can pass: an object with a matching id
        assert isinstance(document, dict) and document.get("id") == key


def test_an_expanded_compression_bomb_is_refused_before_parsing_in_microseconds() -> None:
    bomb = b'{"id": "u1", "payload": "' + b"0" * 50_000_000 + b'"}'  # what 50 kB of zstd expands to
    started = time.perf_counter()
    out = decoder().decode(StubMessage(bomb, b"u1"))
    elapsed = time.perf_counter() - started
    assert isinstance(out, DeadLetterRecord) and out.reason == "oversized"
    assert elapsed < 0.05, f"refusing an oversized record took {elapsed * 1000:.1f} ms"
    assert out.value is not None and len(out.value) <= OVERSIZED_KEEP_BYTES
    message = dict(out.headers)[h.ERROR_MESSAGE]
    assert isinstance(message, bytes) and b"50000" in message  # the real size is reported


def test_a_huge_key_counts_towards_the_limit_and_is_cut_in_the_dead_letter() -> None:
    out = decoder().decode(StubMessage(b'{"id": "u1"}', b"k" * (LIMIT + 1)))
    assert isinstance(out, DeadLetterRecord) and out.reason == "oversized"
    assert out.key is not None and len(out.key) <= OVERSIZED_KEEP_BYTES


def test_an_oversized_record_that_can_be_published_keeps_all_its_bytes_for_redrive() -> None:
    small = RecordDecoder(EchoScorer(), "echo", 4096, 500)  # type: ignore[arg-type]
    raw = b'{"id": "u1", "payload": "' + b"x" * 5000 + b'"}'
    out = small.decode(StubMessage(raw, b"u1"))
    assert isinstance(out, DeadLetterRecord) and out.reason == "oversized" and out.value == raw


def test_a_bad_record_under_the_limit_but_too_big_for_the_dlq_is_cut() -> None:
    raw = b'{"id": "u1", "payload": "' + b"x" * (DLQ_MAX_RECORD_BYTES + 10) + b'"}'
    assert len(raw) < LIMIT
    out = decoder().decode(StubMessage(raw, b"u1"))
    assert isinstance(out, DeadLetterRecord) and out.reason != "oversized"  # payload is over its 100k max
    assert out.value == raw[:OVERSIZED_KEEP_BYTES]


def _same(one: Event[BaseModel] | DeadLetterRecord, other: Event[BaseModel] | DeadLetterRecord) -> bool:
    if isinstance(one, DeadLetterRecord) and isinstance(other, DeadLetterRecord):
        clockless = [(n, v) for n, v in one.headers if n != h.FAILED_AT]
        return (one.reason, one.key, one.value, clockless) == (
            other.reason, other.key, other.value, [(n, v) for n, v in other.headers if n != h.FAILED_AT])
    return one == other


@FUZZ
@given(
    records=st.lists(
        st.one_of(
            st.builds(lambda i, key: (json.dumps({"id": key, "value": i}).encode(), key.encode()),
                      st.integers(), st.sampled_from(["u1", "u2", "u3"])),
            st.tuples(st.binary(max_size=200), st.one_of(st.none(), st.binary(max_size=10))),
            st.builds(lambda doc, key: (json.dumps(doc, allow_nan=True).encode(), key.encode()),
                      json_values, st.sampled_from(["u1", "u2"])),
        ),
        max_size=40,
    )
)
def test_a_batch_decodes_as_its_records_would_one_by_one(records: list[tuple[bytes, bytes | None]]) -> None:
    messages = [StubMessage(raw, key) for raw, key in records]
    together = decoder().decode_many(messages)
    assert len(together) == len(messages)
    assert all(_same(a, decoder().decode(m)) for a, m in zip(together, messages, strict=True))


@pytest.mark.parametrize("service", sorted(golden.SCENARIO_OF_SERVICE))
def test_each_services_golden_records_decode_in_a_batch_as_one_by_one(service: str) -> None:
    """The shop's strict schemas, through the batched path where it applies, on records that are
    good, broken, mis-keyed and of newer minor versions."""
    inputs, _ = golden.load(service)
    spec = load_service(service)
    scorer = spec.create_scorer(spec.settings_class(config_topic=None))
    shop_decoder = RecordDecoder(scorer, service, LIMIT, 500)
    newer = json.loads(inputs[0].value or b"{}") | {"schema_version": "1.9", "added_in_1_9": True}
    inputs = [*inputs, dataclasses.replace(inputs[0], value=json.dumps(newer).encode())]
    messages = [golden.GoldenMessage(record, "in") for record in inputs]
    one_by_one = shop_decoder.decode
    singles: list[MessageLike] = []

    def counted(msg: MessageLike) -> Event[BaseModel] | DeadLetterRecord:
        singles.append(msg)
        return one_by_one(msg)

    shop_decoder.decode = counted  # type: ignore[method-assign]
    together = shop_decoder.decode_many(messages)
    shop_decoder.decode = one_by_one  # type: ignore[method-assign]
    dead = sum(isinstance(d, DeadLetterRecord) for d in together)
    assert dead > 10
    # only what the batched call refused went one by one: some dead letters (a wrong key is found
    # after validation) and the newer minor, never the good records
    assert 1 <= len(singles) <= dead + 1
    assert all(_same(a, shop_decoder.decode(m)) for a, m in zip(together, messages, strict=True))
    assert isinstance(together[-1], Event)  # a newer minor's unknown field is dropped, as one by one
