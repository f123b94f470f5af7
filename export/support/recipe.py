"""``shopstream export support``: all-MiniLM-L6-v2 fine-tuned on BANKING77's 77 intents.

Trains on the official training set less a stratified validation split (10 %, fixed seed),
keeps the epoch with the best validation accuracy, chooses the escalation threshold on the
same validation split, and reports the exported graph on the official test split (3,080).

Options (``--set key=value``): ``lr`` (1e-4), ``head_lr`` (1e-3), ``batch`` (32),
``smoothing`` (label smoothing, 0.1), ``max_length`` (64), ``target`` (accuracy of the
answered messages the threshold is chosen for, 0.97), ``shots`` (train on that many messages
per intent, drawn with ``--seed``; the few-shot rows of the report), ``base`` (a folder with
``config.json``, ``tokenizer.json`` and optionally ``model.safetensors`` to start from instead
of the packaged MiniLM), ``data`` (a shop's own ``text,label`` CSV instead of BANKING77) with
``test`` (its test CSV; without one the figures are on the validation split).

``--from vNNNN`` starts from that version's weights and tokenizer; a shop's labels that the
version does not know get new output rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import BertConfig

from export.checkpoint import load_from_version
from export.pipeline import TrainedModel
from export.quantize import RunFn
from export.registry import ModelRecipe, RecipeArgs
from export.spec import ExportSpec
from export.support import data as ds
from export.support import metrics as m
from export.support.model import (
    INPUTS,
    IntentClassifier,
    bare_tokenizer,
    count_parameters,
    encode,
    from_config,
    minilm_path,
    outputs,
    pretrained,
)
from export.support.train import TrainConfig, train
from shared.models.manifest import TrainingInfo

logger = logging.getLogger(__name__)
NAME = "support"
TOKENIZER_FILE = "tokenizer.json"


def make_spec(tokenizer: Tokenizer, labels: list[str], max_length: int, preprocessing: dict[str, Any]) -> ExportSpec:
    def samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        words = ["card", "refund", "top", "up", "declined", "transfer", "why", "my", "is", "the"]
        texts = [" ".join(rng.choice(words, int(rng.integers(1, 12)))) for _ in range(batch)]
        ids, mask = encode(tokenizer, texts, max_length)
        return {"input_ids": ids, "attention_mask": mask}

    return ExportSpec(
        name=NAME, inputs=INPUTS, outputs=outputs(len(labels)), sample_inputs=samples, atol=1e-3, rtol=1e-3,
        preprocessing={"labels": labels, "max_length": max_length, **preprocessing},
        feature_spec={"tokenizer": f"assets.tokenizer ({TOKENIZER_FILE}: tokenizers JSON, no padding or truncation)",
                      "padding": "right, to the batch's longest message", "pad_id": 0,
                      "truncation": "ids[:max_length], last id set to [SEP] when cut",
                      "builder": "export.support.model.encode", "pooling": "mean over attention_mask"},
    )


def _configs(args: RecipeArgs) -> TrainConfig:
    o = args.options
    return TrainConfig(
        epochs=args.epochs or (1 if args.tiny else 6), batch_size=int(o.get("batch", 8 if args.tiny else 32)),
        lr=float(o.get("lr", 5e-5 if args.from_version else 1e-4)), head_lr=float(o.get("head_lr", 1e-3)),
        label_smoothing=float(o.get("smoothing", 0.1)), max_length=int(o.get("max_length", 64)),
        seed=args.seed, progress=args.progress,
    )


def _data(args: RecipeArgs, labels: list[str]) -> tuple[ds.Split, ds.Split, ds.Split, list[str], str]:
    """(train, validation, test, labels, data name)."""
    shop = args.options.get("data")
    if shop:
        full, labels = ds.shop_messages(Path(shop), labels)
        train_split, valid = ds.stratified_split(full)
        test_path = args.options.get("test")
        test = ds.encode_split(Path(test_path), labels) if test_path else valid
        return train_split, valid, test, labels, f"csv:{shop}"
    train_split, valid = ds.stratified_split(ds.banking77(args.data_dir, "train"))
    test = ds.banking77(args.data_dir, "test")
    if "shots" in args.options:
        train_split = ds.few_shot(train_split, int(args.options["shots"]), seed=args.seed)
    if args.tiny:
        train_split, valid = ds.few_shot(train_split, 4), ds.few_shot(valid, 2)
    return train_split, valid, test, labels, ds.BANKING77


def _start(args: RecipeArgs) -> tuple[IntentClassifier, Tokenizer, list[str], dict[str, Any]]:
    """The model, tokenizer and label list to start from, and the encoder's config."""
    if args.from_version:
        manifest = args.repository.get(NAME, args.from_version)
        config = BertConfig.from_dict(manifest.training.extra["bert_config"])
        labels = list(manifest.preprocessing["labels"])
        model = from_config(config, len(labels))
        load_from_version(model, args.repository, NAME, args.from_version)
        tok = Tokenizer.from_str(args.repository.read_asset(manifest, "tokenizer").decode("utf-8"))
        return model, bare_tokenizer(tok), labels, config.to_dict()
    labels = ds.banking77_labels(args.data_dir)
    base = Path(args.options["base"]) if "base" in args.options else minilm_path()
    tok = bare_tokenizer(Tokenizer.from_file(str(base / "tokenizer.json")))
    if (base / "model.safetensors").is_file():
        model = pretrained(len(labels), base)
    else:  # a config alone: a randomly initialised encoder of that shape (tests, smoke runs)
        model = from_config(BertConfig.from_json_file(base / "config.json"), len(labels))
    return model, tok, labels, model.bert.config.to_dict()


def train_recipe(args: RecipeArgs) -> TrainedModel:
    model, tok, labels, bert_config = _start(args)
    train_split, valid, test, labels, data_name = _data(args, labels)
    model.grow(len(labels))
    cfg = _configs(args)
    target = float(args.options.get("target", 0.97))
    logger.info("support: %d train, %d validation, %d test messages, %d intents, %d parameters",
                len(train_split), len(valid), len(test), len(labels), count_parameters(model))

    def validate(net: IntentClassifier) -> float:
        return m.accuracy(m.predict_probs(net, tok, valid.texts, cfg.max_length), valid.labels)

    result = train(model, tok, train_split, cfg, validate)
    valid_probs = m.predict_probs(result.model, tok, valid.texts, cfg.max_length)
    threshold = m.choose_threshold(valid_probs, valid.labels, target)
    test_metrics = m.summary(m.predict_probs(result.model, tok, test.texts, cfg.max_length), test.labels, threshold)
    valid_cov = m.answered(valid_probs, valid.labels, threshold)
    logger.info("support torch test %s; threshold %.4f covers %.3f of validation",
                test_metrics, threshold, valid_cov[0])

    def metric_fn(run: RunFn) -> dict[str, float]:
        return m.summary(m.predict_probs(run, tok, test.texts, cfg.max_length), test.labels, threshold)

    preprocessing = {"escalation_threshold": threshold, "threshold_target_accuracy": target,
                     "threshold_coverage_valid": valid_cov[0], "threshold_answered_accuracy_valid": valid_cov[1],
                     "threshold_coverage_test": test_metrics["coverage"]}
    heldout = [dict(zip(("input_ids", "attention_mask"), encode(tok, valid.texts[:n], cfg.max_length), strict=True))
               for n in (1, 7, 64)]
    return TrainedModel(
        module=result.model, spec=make_spec(tok, labels, cfg.max_length, preprocessing),
        training=TrainingInfo(
            data=data_name, rows=len(train_split), epochs=len(result.history), seconds=round(result.seconds, 1),
            from_version=args.from_version,
            extra={"bert_config": bert_config, "train": cfg.to_dict(), "best_epoch": result.best_epoch,
                   "best_valid_accuracy": result.best_valid, "history": result.history,
                   "validation": {"rows": len(valid), "fraction": ds.VALID_FRACTION, "seed": ds.SPLIT_SEED},
                   "test_rows": len(test), "shots": args.options.get("shots"),
                   "parameters": count_parameters(result.model)},
        ),
        metrics={**test_metrics, "valid_accuracy": m.accuracy(valid_probs, valid.labels)},
        heldout=heldout, metric_fn=metric_fn, variants=args.variants, timings={"train": result.seconds},
        checkpoint_dtype=torch.float16, assets={"tokenizer": (TOKENIZER_FILE, tok.to_str().encode("utf-8"))},
    )


RECIPE = ModelRecipe(NAME, "customer-support intents: all-MiniLM-L6-v2 fine-tuned on BANKING77 (77 intents)",
                     train_recipe)
