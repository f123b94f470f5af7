"""The top-K head appended to a recommendation graph when a version is loaded.

An exported graph ends with one logit per item token (``scores``, ``[batch, items]``). Masking
those and taking the top K in numpy meant copying a [256, 5001] float matrix out of ONNX Runtime,
writing ``-inf`` over it and an ``argpartition`` per row: a quarter of the scorer's time. Inside
the graph the same steps run on the tensor ORT already holds, and only ``[batch, K]`` comes back::

    masked     = Where(allowed, scores, -inf)             business filters; token 0 (padding)
    masked     = ScatterElements(masked, excluded, -inf)  per-user exclusions (bought items), axis 1
    top_scores, top_tokens = TopK(masked, K)              best first; equal scores: lower token first
    top_items  = top_tokens - item_id_offset

When ``scores`` is the sum of a product and a per-token bias (SASRec's ``pad_bias``, which keeps
the padding token out), the ``Where`` goes on that bias instead: one pass over ``[items]`` rather
than over ``[batch, items]`` (3 µs a row on CPU), and the same numbers, since ``x + b`` is
``x + b`` where allowed and ``x + -inf`` is ``-inf`` elsewhere.

The version's file is not changed (it is checked against its manifest's sha256 and serves the
offline evaluation as it is): :func:`append_top_k` edits a copy of the parsed graph in memory.
Excluded or filtered items come back with a score of ``-inf`` when fewer than K items are left;
the scorer drops them, as it did before.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from shared.errors import ModelSpecMismatch
from shared.models.manifest import TensorSpec

SCORES = "scores"
"""The exported graph's output the head reads (see :data:`services.recommendation.ranker.OUTPUTS`)."""
INPUTS = [
    TensorSpec(name="item_ids", dtype="int64", shape=("batch", "seq")),
    TensorSpec(name="allowed", dtype="bool", shape=("items",)),
    TensorSpec(name="excluded", dtype="int64", shape=("batch", "excluded")),
]
"""The served graph's inputs: the exported graph's ``item_ids``; ``allowed``, one flag per token
(``False`` for token 0 and for business-filtered items); ``excluded``, tokens to leave out per row,
padded with 0 (the padding token, never allowed)."""
OUTPUTS = [
    TensorSpec(name="top_scores", dtype="float32", shape=("batch", "k")),
    TensorSpec(name="top_items", dtype="int64", shape=("batch", "k")),
]
"""The best K logits per row, best first, and their item ids (token - offset)."""
MIN_OPSET = 11
"""TopK with a tensor ``k`` and a defined tie order, and ScatterElements, exist from opset 11."""


def append_top_k(model: onnx.ModelProto, *, num_items: int, offset: int, k: int) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are the top ``k`` allowed, not excluded items per row.

    ``num_items`` (tokens 1..num_items, plus the padding token 0) fixes the size of ``allowed`` so
    that warm-up and ORT check it against the graph; ``k`` is capped at the number of tokens.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise ModelSpecMismatch(f"the top-K head needs opset {MIN_OPSET} or later, the graph has {opset}")
    if [o.name for o in model.graph.output] != [SCORES]:
        raise ModelSpecMismatch(f"the top-K head reads one output {SCORES!r}, the graph has "
                                f"{[o.name for o in model.graph.output]}")
    served = onnx.ModelProto()
    served.CopyFrom(model)
    graph = served.graph
    names = {n for node in graph.node for n in (*node.input, *node.output)} | {i.name for i in graph.initializer}
    taken = names & {"allowed", "excluded", "top_scores", "top_items"}
    if taken:
        raise ModelSpecMismatch(f"the graph already uses the head's names {sorted(taken)}")

    def t(name: str) -> str:  # the head's intermediate names, apart from the graph's own
        return f"top_k_head/{name}"

    tokens = num_items + 1
    graph.initializer.extend([
        helper.make_tensor(t("neg_inf"), TensorProto.FLOAT, [], [float("-inf")]),
        helper.make_tensor(t("k"), TensorProto.INT64, [1], [min(k, tokens)]),
        helper.make_tensor(t("offset"), TensorProto.INT64, [], [offset]),
    ])
    graph.node.extend([
        *_filter(graph, tokens, t("neg_inf"), t("filtered")),
        helper.make_node("Shape", ["excluded"], [t("excluded_shape")]),
        helper.make_node("ConstantOfShape", [t("excluded_shape")], [t("excluded_scores")],
                         value=helper.make_tensor("value", TensorProto.FLOAT, [1], [float("-inf")])),
        helper.make_node("ScatterElements", [t("filtered"), "excluded", t("excluded_scores")], [t("masked")],
                         axis=1),
        helper.make_node("TopK", [t("masked"), t("k")], ["top_scores", t("top_tokens")],
                         axis=-1, largest=1, sorted=1),
        helper.make_node("Sub", [t("top_tokens"), t("offset")], ["top_items"]),
    ])  # fmt: skip
    graph.input.extend([
        helper.make_tensor_value_info("allowed", TensorProto.BOOL, [tokens]),
        helper.make_tensor_value_info("excluded", TensorProto.INT64, ["batch", "excluded"]),
    ])
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, ["batch", min(k, tokens)]),
        helper.make_tensor_value_info("top_items", TensorProto.INT64, ["batch", min(k, tokens)]),
    ])
    return served


def _filter(graph: onnx.GraphProto, tokens: int, neg_inf: str, filtered: str) -> list[onnx.NodeProto]:
    """Nodes to append that write the scores of allowed tokens to ``filtered``, ``-inf`` elsewhere;
    when the scores come from ``Add(x, bias[tokens])``, the bias is masked in place instead."""
    producer = next((i for i, node in enumerate(graph.node) if SCORES in node.output), None)
    node = graph.node[producer] if producer is not None else None
    biases = {i.name: i for i in graph.initializer if list(i.dims) == [tokens] and i.data_type == TensorProto.FLOAT}
    if node is None or node.op_type != "Add" or not any(name in biases for name in node.input):
        return [helper.make_node("Where", ["allowed", SCORES, neg_inf], [filtered])]
    operand = next(j for j, name in enumerate(node.input) if name in biases)
    masked_bias = f"{filtered}_bias"
    graph.node.insert(producer, helper.make_node("Where", ["allowed", node.input[operand], neg_inf], [masked_bias]))
    node.input[operand] = masked_bias
    return [helper.make_node("Identity", [SCORES], [filtered])]
