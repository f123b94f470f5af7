"""A tiny random support model for tests: a 2-layer BERT, a WordPiece tokenizer, a real manifest.

:func:`publish_tiny_support` writes a checksummed version of model ``support`` into a repository
in a few seconds, to the contract the service reads (``input_ids`` and ``attention_mask`` int64
``[batch, seq]`` in; ``logits`` and ``probs`` float32 ``[batch, labels]`` out; the tokenizer as the
``tokenizer`` asset; ``labels``, ``max_length`` and ``escalation_threshold`` in ``preprocessing``).
The weights are random with a fixed seed, so two seeds give two models that score differently and
a test can tell which version served (and whether its tokenizer came with it).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification

from shared.models.manifest import ModelManifest, TensorSpec, TrainingInfo, file_ref
from shared.models.repository import ModelRepository

LABELS = ("card_arrival", "declined_card_payment", "lost_or_stolen_card", "transfer_timing", "top_up_failed",
          "exchange_rate", "terminate_account")  # fmt: skip
"""Seven BANKING77 intents, each routed to its own queue by the default map."""
WORDS = ("my", "card", "has", "not", "arrived", "yet", "payment", "was", "declined", "twice", "lost", "stolen",
         "transfer", "when", "will", "the", "money", "top", "up", "failed", "exchange", "rate", "close", "account",
         "i", "want", "to", "please", "help", "why", "is", "it", "so", "slow", "again", "what")  # fmt: skip
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def build_tokenizer(words: Sequence[str] = WORDS, max_length: int = 32) -> Tokenizer:
    """A lower-casing WordPiece tokenizer over ``words`` (plus ``##s``), with BERT's [CLS]/[SEP] framing."""
    vocab = {token: i for i, token in enumerate((*SPECIAL, *words, "##s", "##ed", "##ing"))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tok.enable_truncation(max_length)
    return tok


class _WithSoftmax(torch.nn.Module):
    def __init__(self, bert: BertForSequenceClassification) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.bert(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits, torch.softmax(logits, dim=-1)


def export_tiny(path: Path, vocab_size: int, labels: int, seed: int, temperature: float = 1.0) -> None:
    """A random 2-layer, 32-wide BERT classifier exported to ONNX at ``path``. ``temperature`` < 1
    sharpens its probabilities (larger head weights), so tests can make it sure or unsure."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    config.num_labels = labels
    bert = BertForSequenceClassification(config)
    bert.train(False)
    with torch.no_grad():
        bert.classifier.weight.mul_(1.0 / temperature)
    ids = torch.ones((2, 8), dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on transformers' shape checks
        _export(_WithSoftmax(bert), ids, path)


def _export(module: torch.nn.Module, ids: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        module, (ids, torch.ones_like(ids)), str(path),
        input_names=["input_ids", "attention_mask"], output_names=["logits", "probs"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "logits": {0: "batch"}, "probs": {0: "batch"}},
        opset_version=17, do_constant_folding=True, dynamo=False,
    )  # fmt: skip


def publish_tiny_support(
    repository: ModelRepository,
    *,
    seed: int = 0,
    labels: Sequence[str] = LABELS,
    max_length: int = 32,
    threshold: float = 0.2,
    temperature: float = 1.0,
    words: Sequence[str] = WORDS,
    version: str | None = None,
) -> ModelManifest:
    """Write a new version of model ``support`` into ``repository`` (see the module docstring)."""
    tokenizer = build_tokenizer(words, max_length)
    tokenizer.no_truncation()  # the service sets truncation from the manifest
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_tiny(path, tokenizer.get_vocab_size(), len(labels), seed, temperature)
        data = path.read_bytes()
    return _publish(repository, data, tokenizer, labels, max_length, threshold, version)


def keyword_onnx(vocab: dict[str, int], keywords: dict[str, str], labels: Sequence[str], sure: float) -> bytes:
    """A graph whose intent is named by the message's first word: ``keywords[word]`` with probability
    ``sure``, the rest shared evenly; any other first word gives every label the same probability."""
    n = len(labels)
    logits = np.zeros((len(vocab), n), dtype=np.float32)
    for word, label in keywords.items():
        logits[vocab[word], labels.index(label)] = np.log(sure * (n - 1) / (1.0 - sure))
    nodes = [
        helper.make_node("Gather", ["input_ids", "one"], ["first"], axis=1),  # the token after [CLS]
        helper.make_node("Gather", ["table", "first"], ["logits"], axis=0),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "keyword",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
         for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", n]) for name in ("logits", "probs")],
        initializer=[numpy_helper.from_array(logits, "table"), numpy_helper.from_array(np.array(1), "one")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


KEYWORDS = {"card": "card_arrival", "payment": "declined_card_payment", "lost": "lost_or_stolen_card",
            "transfer": "transfer_timing", "top": "top_up_failed", "exchange": "exchange_rate",
            "close": "terminate_account"}  # fmt: skip
"""First word → intent of :func:`publish_keyword_support`'s default model (each to its own queue)."""


def publish_keyword_support(
    repository: ModelRepository,
    *,
    keywords: dict[str, str] | None = None,
    sure: float = 0.9,
    threshold: float = 0.5,
    max_length: int = 32,
    words: Sequence[str] = WORDS,
    version: str | None = None,
) -> ModelManifest:
    """A version of model ``support`` whose answers a test can predict (:func:`keyword_onnx`): a message
    starting with a keyword is understood (``sure``), any other is ``low_confidence`` below ``threshold``."""
    tokenizer = build_tokenizer(words, max_length)
    tokenizer.no_truncation()
    data = keyword_onnx(tokenizer.get_vocab(), KEYWORDS if keywords is None else keywords, LABELS, sure)
    return _publish(repository, data, tokenizer, LABELS, max_length, threshold, version)


def _publish(repository: ModelRepository, data: bytes, tokenizer: Tokenizer, labels: Sequence[str],
             max_length: int, threshold: float, version: str | None) -> ModelManifest:
    with tempfile.TemporaryDirectory() as tmp:
        model_path, tok_path = Path(tmp) / "model.onnx", Path(tmp) / "tokenizer.json"
        model_path.write_bytes(data)
        tok_path.write_text(tokenizer.to_str(), encoding="utf-8")
        ref = file_ref(model_path)
        manifest = ModelManifest(
            name="support", version="pending", sha256=ref.sha256, size_bytes=ref.size_bytes,
            inputs=[TensorSpec(name=n, dtype="int64", shape=("batch", "seq")) for n in ("input_ids", "attention_mask")],
            outputs=[TensorSpec(name=n, dtype="float32", shape=("batch", len(labels))) for n in ("logits", "probs")],
            preprocessing={"labels": list(labels), "max_length": max_length, "escalation_threshold": threshold,
                           "threshold_target_accuracy": 0.95},
            assets={"tokenizer": file_ref(tok_path)}, training=TrainingInfo(data="random", rows=0), opset=17,
        )  # fmt: skip
        return repository.write_version(manifest, {"model.onnx": model_path, "tokenizer.json": tok_path},
                                        version=version)
