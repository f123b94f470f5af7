"""``shopstream export recommendation``: a SASRec-style next-item model.

Options (``--set key=value``):

* ``data``: ``sim`` (default; the demo's simulated shop), ``beauty`` or ``games`` (real data,
  for the evaluation report; those models are large and stay out of git);
* ``events`` (sim: clickstream events to train on, 300000), ``skip`` (sim: start later in the
  stream, for fine-tuning on "new" data);
* ``attributes`` (``1``, default: add brand/category embeddings where the data has them, i.e.
  Beauty's ``item2attributes`` and the simulated shop's item categories; ``0``: item ids only),
* ``dim`` (64), ``layers`` (2), ``heads`` (1), ``dropout`` (0.2 sim, 0.5 real), ``max_len`` (50),
  ``negatives`` (1024 shared uniform negatives per batch; 0 = full softmax), ``lr`` (0.002),
  ``bce`` (weight of an extra SASRec-style binary loss, 0), ``ce`` (weight of the
  cross-entropy, 1; ``ce=0 bce=1`` is SASRec's binary loss alone), ``bias`` (``1``: a learned
  per-item output bias; the default for sim, 0 for real data),
  ``select`` (early-stopping metric: ``full`` NDCG@10, the default, or ``sampled`` NDCG@10
  against validation negatives drawn with their own seed, never the test ones),
  ``budget_s`` (training wall-clock cap: 400 sim, 1140 real), ``batch`` (256),
  ``patience`` (validations without gain before stopping, 4; one validation per 2 epochs),
  ``refit`` (``1``: train on the histories *through* the validation item, for a fixed number of
  epochs and keeping the last; pass ``--epochs`` as chosen on validation by an earlier run,
  or ``--from`` that run for a short update. The test item is still never trained on).

``--from vNNNN`` fine-tunes that version's weights (same architecture and catalogue; ``bias`` and
``attributes`` default to that version's), at half the learning rate unless ``lr`` is set.
The held-out metrics in the manifest's ``onnx_*`` entries come from the exported graph run
through :class:`services.recommendation.ranker.OnnxRanker` and the serving features.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from export.pipeline import TrainedModel
from export.quantize import RunFn
from export.recommendation.data import NEGATIVES, SequenceDataset, load_dataset, sample_negatives
from export.recommendation.evaluate import evaluate, torch_predictor
from export.recommendation.model import SASRec, SASRecConfig, count_parameters
from export.recommendation.sim_data import catalogue_metadata, sim_clicks
from export.recommendation.train import TrainConfig, train
from export.registry import ModelRecipe, RecipeArgs
from export.spec import ExportSpec
from services.recommendation.catalog import ALL
from services.recommendation.features import pad_left
from services.recommendation.ranker import INPUTS, OUTPUTS, OnnxRanker
from shared.models.manifest import TrainingInfo

logger = logging.getLogger(__name__)

VALID_USERS = 4000
"""Validation (early stopping) uses a fixed subset of users to keep epochs cheap."""
VALID_NEGATIVE_SEED = 777
"""Seed of the validation negatives (``select=sampled``), distinct from the test seed 12345."""


def make_spec(num_items: int, max_len: int, preprocessing: dict[str, Any]) -> ExportSpec:
    def samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        seqs = [rng.integers(1, num_items + 1, int(rng.integers(1, max_len + 1))).tolist() for _ in range(batch)]
        return {"item_ids": pad_left(seqs, max_len)}

    return ExportSpec(
        name="recommendation", inputs=tuple(INPUTS), outputs=tuple(OUTPUTS), sample_inputs=samples,
        atol=2e-3, rtol=1e-4, preprocessing=preprocessing,
        feature_spec={"builder": "services.recommendation.features (append_event, sequence_of, pad_left)",
                      "input": "item tokens oldest first, left-padded with 0", "output": "next-item logits"},
    )


def _load(args: RecipeArgs) -> tuple[SequenceDataset, dict[str, Any]]:
    opts = args.options
    data = opts.get("data", "sim")
    if data == "sim":
        events = 20_000 if args.tiny else int(opts.get("events", 300_000))
        clicks = sim_clicks(events, seed=int(opts.get("seed", 7)), skip=int(opts.get("skip", 0)))
        return clicks.dataset, catalogue_metadata(int(opts.get("seed", 7)), clicks.popularity)
    if data not in ("beauty", "games"):
        raise ValueError(f"data={data!r}: expected sim, beauty or games")
    ds = load_dataset(data, args.data_dir)  # type: ignore[arg-type]
    counts = np.bincount(np.concatenate([s[:-2] for s in ds.sequences]), minlength=ds.num_items + 1)
    popular = [int(i) for i in np.argsort(-counts[1:], kind="stable")[:200] + 1]
    return ds, {"num_items": ds.num_items, "item_id_offset": 0, "popular": {ALL: popular}}


def _inherited(args: RecipeArgs) -> dict[str, str]:
    """The ``bias`` and ``attributes`` of the version fine-tuned from (``--from``), so its checkpoint fits."""
    if not args.from_version:
        return {}
    model = args.repository.get("recommendation", args.from_version).training.extra.get("model", {})
    return {"bias": "1" if model.get("item_bias") else "0", "attributes": "1" if model.get("num_attributes") else "0"}


def _configs(args: RecipeArgs, ds: SequenceDataset) -> tuple[SASRecConfig, TrainConfig]:
    sim = args.options.get("data", "sim") == "sim"
    o = {"bias": "1" if sim else "0", **_inherited(args), **args.options}
    attrs = ds.attributes if o.get("attributes", "1") == "1" and ds.attributes else {}
    model = SASRecConfig(
        num_items=ds.num_items,
        num_attributes=max((max(v) for v in attrs.values() if v), default=0),
        attrs_per_item=max((len(v) for v in attrs.values()), default=0),
        max_len=int(o.get("max_len", 50)),
        dim=int(o.get("dim", 32 if args.tiny else 64)),
        layers=int(o.get("layers", 2)),
        heads=int(o.get("heads", 1)),
        dropout=float(o.get("dropout", 0.2 if sim else 0.5)),
        item_bias=o["bias"] == "1",
    )
    if o.get("refit") == "1" and not (args.epochs or args.tiny):
        raise ValueError("refit=1 needs --epochs: the epoch count an earlier run chose on validation")
    tc = TrainConfig(
        epochs=args.epochs or (2 if args.tiny else 200),
        batch_size=int(o.get("batch", 256)),
        lr=float(o.get("lr", 1e-3 if args.from_version else 2e-3)),
        # A refit runs the epochs chosen on validation; a wall-clock cap would silently cut it.
        time_budget_s=float(o.get("budget_s", "inf" if o.get("refit") == "1" else 400 if sim else 1140)),
        negatives=int(o.get("negatives", 1024)),
        bce_weight=float(o.get("bce", 0.0)),
        ce_weight=float(o.get("ce", 1.0)),
        patience=int(o.get("patience", 4)),
        seed=args.seed,
        progress=args.progress,
        eval_every=1 if args.tiny else int(o.get("eval_every", 2)),
    )
    return model, tc


def train_recipe(args: RecipeArgs) -> TrainedModel:
    ds, preprocessing = _load(args)
    mcfg, tcfg = _configs(args, ds)
    net = SASRec(mcfg)
    if mcfg.num_attributes and ds.attributes:
        net.set_attributes(ds.attributes)
    if args.from_version:
        from export.checkpoint import load_from_version

        load_from_version(net, args.repository, "recommendation", args.from_version)
    users = np.random.default_rng(0).permutation(ds.num_users)[:VALID_USERS]
    capacity = mcfg.max_len
    select = args.options.get("select", "full")
    count = NEGATIVES.get(ds.name, 100)
    valid_negatives = sample_negatives(ds, count, VALID_NEGATIVE_SEED) if select == "sampled" else None

    def validate(m: SASRec) -> float:
        return evaluate(torch_predictor(m), ds, "valid", valid_negatives, capacity, users)[select]["NDCG@10"]

    refit = args.options.get("refit", "0") == "1"
    result = train(net, ds.train_sequences(through_validation=refit), tcfg, None if refit else validate)
    negatives = sample_negatives(ds, count)

    def metric_fn(run: RunFn) -> dict[str, float]:
        report = evaluate(OnnxRanker(_Runner(run), mcfg.max_len), ds, "test", negatives, capacity)
        return _flatten(report)

    torch_metrics = _flatten(evaluate(torch_predictor(result.model), ds, "test", negatives, capacity))
    logger.info("torch test metrics %s", torch_metrics)
    heldout_seqs = [s[:-1] for s in ds.sequences[:64]]
    return TrainedModel(
        module=result.model, spec=make_spec(ds.num_items, mcfg.max_len, {**preprocessing, "max_len": mcfg.max_len}),
        training=TrainingInfo(
            data=ds.name, rows=ds.num_interactions, epochs=result.epochs_run, seconds=round(result.train_seconds, 1),
            from_version=args.from_version,
            extra={"model": mcfg.to_dict(), "train": {**tcfg.__dict__}, "best_epoch": result.best_epoch,
                   "best_valid_ndcg10": None if refit else result.best_valid, "refit": refit,
                   "parameters": count_parameters(result.model),
                   "users": ds.num_users, "negative_seed": 12345, "select": select, "history": result.history},
        ),
        metrics=torch_metrics,
        heldout=[{"item_ids": pad_left(heldout_seqs[:n], mcfg.max_len)} for n in (1, 7, 64)],
        metric_fn=metric_fn, variants=args.variants, timings={"train": result.train_seconds},
    )


class _Runner:
    """Adapts the export pipeline's run function to the ranker's ``run`` protocol."""

    def __init__(self, run: RunFn) -> None:
        self.run = run


def _flatten(report: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{protocol}_{k}": v for protocol, metrics in report.items() for k, v in metrics.items()}


RECIPE = ModelRecipe(
    "recommendation", "SASRec-style next-item transformer (sim shop by default; --set data=beauty|games)", train_recipe
)
