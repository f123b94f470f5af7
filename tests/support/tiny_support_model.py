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

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification

from shared.models.manifest import ModelManifest, TensorSpec, TrainingInfo, file_ref
from shared.models.repository import ModelRepository

LABELS = ("card_arrival", "declined_card_payment", "lost_or_stolen_card", "transfer_timing", "top_up_failed",
          "exchange_rate", "terminate_account")  # fmt: skip
"""Seven BANKING77 intents, so the default queue map routes them to different queues."""
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
    with tempfile.TemporaryDirectory() as tmp:
        model_path, tok_path = Path(tmp) / "model.onnx", Path(tmp) / "tokenizer.json"
        tokenizer.no_truncation()  # the service sets truncation from the manifest
        tok_path.write_text(tokenizer.to_str(), encoding="utf-8")
        export_tiny(model_path, tokenizer.get_vocab_size(), len(labels), seed, temperature)
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
