"""The top-K head appended to the recommendation graph at load, against numpy on the full scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from services.recommendation.head import append_top_k
from services.recommendation.ranker import OnnxRanker, length_groups, top_k
from shared.errors import ModelSpecMismatch
from shared.models.session import OnnxModel

MODELS = Path(__file__).resolve().parents[2] / "models" / "recommendation"
NUM_ITEMS, OFFSET, MAX_LEN = 5000, 1, 50


@pytest.fixture(scope="module", params=["v0001", "v0002"])
def exported(request: pytest.FixtureRequest) -> onnx.ModelProto:
    """The committed graphs: v0001 ends in the padding bias, v0002 in a learned item bias too."""
    return onnx.load(str(MODELS / request.param / "model.onnx"))


def session(model: onnx.ModelProto) -> OnnxModel:
    return OnnxModel(model.SerializeToString(), providers=["cpu"], intra_op_threads=1)


def cast_model(opset: int = 17) -> onnx.ModelProto:
    """``scores = float(item_ids)``: a graph whose scores a test chooses (ties, few allowed)."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["item_ids"], ["scores"], to=TensorProto.FLOAT)], "cast",
        [helper.make_tensor_value_info("item_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "items"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def masked_top_k(scores: np.ndarray, allowed: np.ndarray, excluded: list[list[int]], k: int) -> tuple[np.ndarray, ...]:
    """What the scorer did before the head: mask a copy of the full scores in numpy, then top-K."""
    scores = scores.copy()
    scores[:, ~allowed] = -np.inf
    for row, tokens in enumerate(excluded):
        scores[row, tokens] = -np.inf
    cols, vals = top_k(scores, k)
    return cols - OFFSET, vals


def test_the_head_returns_what_numpy_took_from_the_full_scores(exported: onnx.ModelProto) -> None:
    rng = np.random.default_rng(4)
    sequences = [rng.integers(1, NUM_ITEMS + 1, size=rng.integers(1, 30)).tolist() for _ in range(64)]
    allowed = np.ones(NUM_ITEMS + 1, dtype=bool)
    allowed[0] = False
    allowed[rng.integers(1, NUM_ITEMS + 1, size=500)] = False
    full = OnnxRanker(session(exported), MAX_LEN).scores(sequences)
    excluded: list[list[int]] = [[] for _ in sequences]
    for row in (0, 5, 9):  # each row's own favourites, so the exclusion changes its list
        excluded[row] = np.argsort(-full[row])[:3].tolist()
    excluded[5] += excluded[5][:1]  # a duplicate is harmless
    served = append_top_k(exported, num_items=NUM_ITEMS, offset=OFFSET, k=10)
    onnx.checker.check_model(served)
    items, scores = OnnxRanker(session(served), MAX_LEN).top(sequences, allowed, excluded)
    want_items, want_scores = masked_top_k(full, allowed, excluded, 10)
    assert items.shape == (64, 10) and items.dtype == np.int64 and scores.dtype == np.float32
    assert (items == want_items).all()
    assert np.abs(scores - want_scores).max() <= 1e-6
    assert not set(items[0].tolist()) & {t - OFFSET for t in excluded[0]}


def test_the_allowed_mask_goes_on_the_bias_and_the_file_is_not_changed(exported: onnx.ModelProto,
                                                                       request: pytest.FixtureRequest) -> None:
    before = exported.SerializeToString()
    served = append_top_k(exported, num_items=NUM_ITEMS, offset=OFFSET, k=10)
    assert exported.SerializeToString() == before
    wheres = [n for n in served.graph.node if n.op_type == "Where"]
    # v0001's scores end in + pad_bias, v0002's in + item_bias: the mask goes on that last bias
    last_bias = {"v0001": "pad_bias", "v0002": "item_bias"}[request.node.callspec.params["exported"]]
    assert [n.input[:2] for n in wheres] == [["allowed", last_bias]]
    assert [o.name for o in served.graph.output] == ["top_scores", "top_items"]


def test_equal_scores_come_lower_token_first_and_too_few_items_end_in_minus_infinity() -> None:
    served = session(append_top_k(cast_model(), num_items=7, offset=OFFSET, k=5))
    allowed = np.array([False, True, True, True, True, False, True, True])
    ids = np.array([[0, 2, 2, 1, 2, 9, 1, 2], [0, 1, 1, 1, 1, 1, 1, 1]], dtype=np.int64)
    excluded = np.array([[7, 0], [2, 3]], dtype=np.int64)
    out = served.run({"item_ids": ids, "allowed": allowed, "excluded": excluded})
    assert out["top_items"][0].tolist() == [0, 1, 3, 2, 5]  # tokens 1, 2, 4 (score 2), 3, 6 (score 1)
    assert out["top_scores"][0].tolist() == [2.0, 2.0, 2.0, 1.0, 1.0]
    assert out["top_items"][1, :4].tolist() == [0, 3, 5, 6]  # only four tokens left: the fifth is -inf
    assert out["top_scores"][1, :4].tolist() == [1.0] * 4 and out["top_scores"][1, 4] == -np.inf


def test_k_is_capped_at_the_number_of_tokens() -> None:
    served = session(append_top_k(cast_model(), num_items=3, offset=0, k=10))
    out = served.run({"item_ids": np.array([[0, 1, 2, 3]]), "allowed": np.ones(4, dtype=bool),
                      "excluded": np.zeros((1, 1), dtype=np.int64)})
    assert out["top_items"].tolist() == [[3, 2, 1, 0]]


def test_graphs_the_head_cannot_extend_are_refused() -> None:
    with pytest.raises(ModelSpecMismatch, match="opset"):
        append_top_k(cast_model(opset=10), num_items=3, offset=0, k=2)
    two_outputs = cast_model()
    two_outputs.graph.output.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, None))
    with pytest.raises(ModelSpecMismatch, match="one output"):
        append_top_k(two_outputs, num_items=3, offset=0, k=2)


def test_length_groups_pay_a_call_only_where_padding_costs_more() -> None:
    assert length_groups([0, 0, 0, 12]) == [3]
    assert length_groups([0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) == [1, 25]
    assert length_groups([0, 1, 1]) == [2]  # two rows: padding one of them costs less than a call
    assert length_groups([]) == []


def test_scoring_by_length_groups_gives_each_row_its_answer(exported: onnx.ModelProto) -> None:
    rng = np.random.default_rng(9)
    sequences = [rng.integers(1, NUM_ITEMS + 1, size=n).tolist() for n in [2] * 40 + [3] * 30 + [40, 45, 60]]
    rng.shuffle(sequences)  # type: ignore[arg-type]
    allowed = np.ones(NUM_ITEMS + 1, dtype=bool)
    allowed[0] = False
    excluded: list[list[int]] = [[] for _ in sequences]
    excluded[3] = [int(sequences[3][-1]) + OFFSET]
    model = session(append_top_k(exported, num_items=NUM_ITEMS, offset=OFFSET, k=10))
    one_call = OnnxRanker(model, MAX_LEN).top(sequences, allowed, excluded)
    grouped = OnnxRanker(model, MAX_LEN, by_length=True).top(sequences, allowed, excluded)
    assert len(length_groups(np.bincount([min(len(s), MAX_LEN) for s in sequences]).tolist())) > 1
    assert (one_call[0] == grouped[0]).all()
    assert np.abs(one_call[1] - grouped[1]).max() < 1e-5
