"""The support service's parts: message validation, padding and length groups, the manifest check, routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.support.model import check_manifest
from services.support.queues import DEFAULT_QUEUES
from services.support.repeats import RepeatRule
from services.support.scorer import SupportScorer
from services.support.settings import SupportSettings
from services.support.tokens import Tokens, length_groups, load_tokenizer
from shared.errors import ModelSpecMismatch
from shared.models.repository import ModelRepository
from shared.runtime.codec import DeadLetterRecord, RecordDecoder
from shared.runtime.scorer import Event, LoadContext, Scored
from shared.runtime.state import StateStore
from shared.schemas import headers as h
from shared.schemas.support import SupportIntent, SupportMessage
from tests.support.stubs import StubMessage
from tests.support.tiny_support_model import WORDS, build_tokenizer, publish_tiny_support

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "data" / "intent-banking77-polyai" / "categories.json"
GOOD: dict[str, Any] = {"message_id": "m1", "customer_id": "c1", "channel": "email", "language": "en-GB",
                        "text": "My card payment was declined twice", "ts_ms": 1_760_000_000_000}  # fmt: skip


def record(change: dict[str, Any] | None = None, drop: str | None = None) -> bytes:
    value = {k: v for k, v in {**GOOD, **(change or {})}.items() if k != drop}
    return json.dumps(value).encode()


def test_bad_messages_are_dead_lettered_with_a_clear_reason_and_the_rest_decode() -> None:
    decoder = RecordDecoder(SupportScorer(SupportSettings()), "support", 100_000, 500)
    cases = {
        "control character": (record({"text": "my card\x00 is stuck"}), "invalid_value", "U+0000"),
        "escape": (record({"text": "hello \x1b[31m"}), "invalid_value", "U+001B"),
        "overlong": (record({"text": "a" * 1001}), "invalid_value", "at most 1000 characters"),
        "blank": (record({"text": " \n\t "}), "invalid_value", "at least 1 character"),
        "missing text": (record(drop="text"), "missing_field", "text"),
        "unknown channel": (record({"channel": "fax"}), "invalid_value", "channel"),
        "bad language": (record({"language": "english"}), "invalid_value", "language"),
        "invalid utf-8": (record().replace(b"declined", b"decl\xff\xfeed"), "invalid_utf8", "byte"),
    }
    good = [StubMessage(record(), b"c1", _offset=0), StubMessage(record({"text": "line one\nline\ttwo\r\n"}), b"c1",
                                                                 _offset=1)]  # fmt: skip
    bad = [StubMessage(raw, b"c1", _offset=2 + i) for i, (raw, _, _) in enumerate(cases.values())]
    decoded = decoder.decode_many([good[0], *bad, good[1]])
    assert isinstance(decoded[0], Event) and isinstance(decoded[-1], Event)
    assert decoded[0].value.text == GOOD["text"] and decoded[-1].value.text == "line one\nline\ttwo"
    for (name, (_, reason, words)), dead in zip(cases.items(), decoded[1:-1], strict=True):
        assert isinstance(dead, DeadLetterRecord), name
        assert dead.reason == reason, name
        message = dict(dead.headers)[h.ERROR_MESSAGE]
        assert isinstance(message, bytes) and words in message.decode(), (name, message)


def test_a_record_keyed_by_another_customer_is_refused() -> None:
    decoder = RecordDecoder(SupportScorer(SupportSettings()), "support", 100_000, 500)
    (dead,) = decoder.decode_many([StubMessage(record(), b"c2")])
    assert isinstance(dead, DeadLetterRecord) and dead.reason == "key_mismatch"


def test_padding_keeps_each_rows_tokens_and_masks_the_rest() -> None:
    tokenizer = load_tokenizer(build_tokenizer().to_str().encode(), 6)
    tokens = Tokens.encode(tokenizer, ["card", "my card has not arrived yet again", "payment was declined"])
    assert tokens.lengths.tolist() == [3, 6, 5], "[CLS] + words + [SEP], cut at max_length"
    ids, mask = tokens.padded(np.array([2, 0]), pad_id=0)
    assert ids.shape == (2, 5) and mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    vocab = tokenizer.get_vocab()
    assert ids[1].tolist() == [vocab["[CLS]"], vocab["card"], vocab["[SEP]"], 0, 0]
    cut = tokens.padded(np.array([1]), pad_id=0)[0][0]
    assert cut[-1] == vocab["[SEP]"], "a cut message still ends with [SEP]"


def test_length_groups_cover_every_row_once_shortest_first_and_split_large_groups() -> None:
    lengths = np.array([5] * 40 + [60, 7, 6, 58])
    groups = length_groups(lengths, max_rows=16)
    rows = np.concatenate(groups)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert all(len(g) <= 16 for g in groups)
    longest = [int(lengths[g].max()) for g in groups]
    assert longest == sorted(longest) and longest[-1] == 60
    assert max(longest[:-1]) <= 7, "the two long messages are not padded with the short ones, nor they to 60"
    assert len(length_groups(np.array([9, 9, 10]))) == 1, "similar lengths: one call is cheaper"


def test_length_groups_give_the_same_answers_as_one_padded_batch(tmp_path: Path) -> None:
    publish_tiny_support(ModelRepository(tmp_path), seed=3, temperature=0.2)
    words = [*WORDS, "unknown", "words"]
    texts = [" ".join(words[: 1 + (i * 7) % len(words)]) for i in range(40)]
    batch = [Event(SupportMessage(**{**GOOD, "message_id": f"m{i}", "customer_id": f"c{i}", "text": t}),
                   f"c{i}", "in", 0, i, 0) for i, t in enumerate(texts)]  # fmt: skip
    out = {}
    for buckets in (True, False):
        settings = SupportSettings(models_dir=tmp_path, execution_providers=["cpu"], length_buckets=buckets)
        scorer = SupportScorer(settings)
        scorer.load(LoadContext(settings=settings, state=StateStore()))
        out[buckets] = [SupportIntent.model_validate_json(r.outputs[0].value) for r in scorer.score(batch)  # type: ignore[arg-type]
                        if isinstance(r, Scored)]  # fmt: skip
    assert len(length_groups(Tokens.encode(scorer.text_pipeline(scorer.slot.current.manifest).tokenizer,
                                           texts).lengths)) > 1  # fmt: skip
    for grouped, padded in zip(out[True], out[False], strict=True):
        assert grouped.intent == padded.intent
        for a, b in zip(grouped.top3, padded.top3, strict=True):
            assert a.intent == b.intent and a.probability == pytest.approx(b.probability, abs=1e-5)


def test_the_manifest_check_refuses_what_the_scorer_cannot_serve(tmp_path: Path) -> None:
    manifest = publish_tiny_support(ModelRepository(tmp_path))
    check_manifest(manifest)
    pre = manifest.preprocessing
    broken = {
        "no labels": manifest.model_copy(update={"preprocessing": {k: v for k, v in pre.items() if k != "labels"}}),
        "label count": manifest.model_copy(update={"preprocessing": {**pre, "labels": pre["labels"][:-1]}}),
        "no tokenizer": manifest.model_copy(update={"assets": {}}),
        "no threshold": manifest.model_copy(
            update={"preprocessing": {k: v for k, v in pre.items() if k != "escalation_threshold"}}),
    }
    for name, bad in broken.items():
        with pytest.raises(ModelSpecMismatch):
            check_manifest(bad)
            pytest.fail(f"{name}: accepted")


def test_the_repeat_rule_keeps_the_newest_within_the_window() -> None:
    rule = RepeatRule(count=3, window_ms=10_000, max_kept=3)
    entries: list[list[Any]] = []
    for i, ts in enumerate([0, 4_000, 2_000, 9_000, 15_000]):
        entries = rule.remember(entries, ts, "card_arrival", f"m{i}")
    assert [e[0] for e in entries] == [9_000, 15_000], "out of order kept sorted; at most 3; older than 10 s gone"
    assert rule.within(entries, 15_000, "cards", lambda _: "cards") == len(entries)
    assert rule.remember(entries, 15_000, "card_arrival", "m4") is entries, "a replayed message is not added"


def test_the_default_queue_map_routes_every_banking77_intent() -> None:
    assert len(DEFAULT_QUEUES) == 77
    assert set(DEFAULT_QUEUES.values()) == {"cards", "security", "payments", "transfers", "top_up", "cash",
                                            "exchange", "account"}  # fmt: skip
    if BANKING77.is_file():  # the data set beside the checkout
        assert set(DEFAULT_QUEUES) == set(json.loads(BANKING77.read_text()))
