"""``shopstream export ad_ctr``: DCN-v2 + creative-text tower on the simulated shop's ads.

Publishes two versions: the text encoder (``ad_ctr_text``) first, then the CTR graph
(``ad_ctr``) whose manifest pins that encoder by version and sha256.

Options (``--set key=value``): ``text=hash`` (default: hashed-token tower trained jointly)
or ``text=distil`` (MiniLM with its top layer fine-tuned, distilled into the hashed-token
tower; slow on CPU); ``requests`` in the train slice (20000); ``labels=shuffled`` trains on the
clicks permuted across the training (and validation) rows, a deliberately worthless model with the
real interface: the negative control a promotion gate must refuse (its test split keeps the true
clicks, so the manifest shows its AUC near 0.5). ``--from vNNNN`` fine-tunes both graphs of that
version on the next slice of the stream ("a new day").
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from export.ad_ctr.fit import calibrated, fit, new_model, scores
from export.ad_ctr.model import DcnV2
from export.ad_ctr.sim_data import SimSplit, sim_splits
from export.ad_ctr.text_tower import HashTower, distil, embed_all
from export.ad_ctr.train import TrainConfig
from export.checkpoint import load_from_version
from export.pipeline import TrainedModel, export_and_publish
from export.quantize import RunFn
from export.registry import ModelRecipe, RecipeArgs
from export.spec import ExportSpec
from services.ad_ctr.features import REQUEST_SPEC, TextSpec
from services.ad_ctr.model_io import CTR_OUTPUTS, TEXT_OUTPUTS
from shared.models.manifest import ModelManifest, TensorSpec, TrainingInfo

logger = logging.getLogger(__name__)

TEXT_DIM = 16
TEXT = TextSpec()
SCRATCH = TrainConfig(epochs=5, batch_size=1024, lr=1e-3, weight_decay=1e-4, patience=1)
FINE_TUNE = TrainConfig(epochs=2, batch_size=1024, lr=5e-4, text_lr=5e-4, patience=1)


def _ctr_samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ids = [off + rng.integers(0, n, batch) for off, n in zip(REQUEST_SPEC.offsets, REQUEST_SPEC.buckets, strict=True)]
    return {"sparse": np.stack(ids, axis=1).astype(np.int64),
            "text_emb": rng.uniform(-1, 1, (batch, TEXT_DIM)).astype(np.float32)}


def _text_samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    mask = (np.arange(TEXT.max_tokens)[None, :] < rng.integers(1, TEXT.max_tokens + 1, (batch, 1))).astype(np.float32)
    ids = (rng.integers(1, TEXT.buckets, (batch, TEXT.max_tokens)) * mask).astype(np.int64)
    return {"token_ids": ids, "token_mask": mask}


TEXT_SPEC = ExportSpec(
    name="ad_ctr_text",
    inputs=(TensorSpec(name="token_ids", dtype="int64", shape=("batch", TEXT.max_tokens)),
            TensorSpec(name="token_mask", dtype="float32", shape=("batch", TEXT.max_tokens))),
    outputs=(TensorSpec(name="embedding", dtype="float32", shape=("batch", TEXT_DIM)),),
    sample_inputs=_text_samples, atol=1e-5,
    feature_spec={"text": TEXT.to_dict(), "builder": "services.ad_ctr.features.encode_titles"},
)
assert [t.name for t in TEXT_SPEC.outputs] == [t.name for t in TEXT_OUTPUTS]


def ctr_spec(text_manifest: ModelManifest, calibration: tuple[float, float]) -> ExportSpec:
    return ExportSpec(
        name="ad_ctr",
        inputs=(TensorSpec(name="sparse", dtype="int64", shape=("batch", len(REQUEST_SPEC.fields))),
                TensorSpec(name="text_emb", dtype="float32", shape=("batch", TEXT_DIM))),
        outputs=tuple(CTR_OUTPUTS), sample_inputs=_ctr_samples, atol=1e-5,
        feature_spec=REQUEST_SPEC.to_dict() | {
            "text": TEXT.to_dict(), "builder": "services.ad_ctr.features.candidate_rows + encode_rows"},
        preprocessing={
            "text_encoder": {"name": text_manifest.name, "version": text_manifest.version,
                             "sha256": text_manifest.sha256},
            "calibration": {"method": "platt", "a": calibration[0], "b": calibration[1], "in_graph": True},
        },
    )


def _slices(args: RecipeArgs) -> list[int]:
    """Request counts of train, validation, test; ``--from`` shifts to the next day's slice."""
    n = 300 if args.tiny else int(args.options.get("requests", 20000))
    skip = n + n // 4 + n // 4 if args.from_version else 0
    return [skip, n, n // 4, n // 4] if skip else [n, n // 4, n // 4]


def _load_previous(model: DcnV2, tower: HashTower, args: RecipeArgs) -> None:
    assert args.from_version is not None
    load_from_version(model, args.repository, "ad_ctr", args.from_version)
    text = args.repository.get("ad_ctr", args.from_version).preprocessing["text_encoder"]
    load_from_version(tower.encoder, args.repository, text["name"], text["version"])


def _distil_from_minilm(tr: SimSplit, va: SimSplit, titles: list[str], tower: HashTower) -> DcnV2:
    from export.ad_ctr.text_tower import MiniLmTower

    frozen = MiniLmTower(titles, TEXT_DIM, train_layers=0)
    stage_a = fit(new_model(REQUEST_SPEC, TEXT_DIM), frozen, tr.data, va.data, SCRATCH, "minilm frozen")
    tuned = MiniLmTower(titles, TEXT_DIM, train_layers=1)
    tuned.proj.load_state_dict(frozen.proj.state_dict())
    cfg = TrainConfig(epochs=1, lr=5e-4, text_lr=1e-4, group_creatives=64, patience=1)
    stage_b = fit(stage_a.model, tuned, tr.data, va.data, cfg, "minilm top layer tuned")
    logger.info("distil MSE %.5f", distil(tower, embed_all(tuned, len(titles))))
    # The student reproduces the teacher's embeddings (MSE ~0.005; same test AUC in eval_sim),
    # so the CTR part and its calibration are kept as trained against the teacher.
    return stage_b.model


def shuffled_labels(split: SimSplit, seed: int) -> SimSplit:
    """``split`` with its click labels permuted across rows: features and labels no longer belong together."""
    labels = np.random.default_rng(seed).permutation(split.data.label)
    return dataclasses.replace(split, data=dataclasses.replace(split.data, label=labels))


def train(args: RecipeArgs) -> TrainedModel:
    mode = args.options.get("text", "hash")
    splits, catalogue = sim_splits(_slices(args), seed=7)
    tr, va, te = splits[-3:]
    labels = args.options.get("labels", "true")
    if labels not in ("true", "shuffled"):
        raise ValueError(f"labels={labels!r}: choose true or shuffled")
    if labels == "shuffled":
        tr, va = shuffled_labels(tr, args.seed), shuffled_labels(va, args.seed + 1)
    start = time.perf_counter()
    tower = HashTower(catalogue.titles, TEXT, TEXT_DIM)
    model = new_model(REQUEST_SPEC, TEXT_DIM, seed=args.seed, base_rate=float(tr.data.label.mean()))
    base = FINE_TUNE if args.from_version else SCRATCH
    cfg = TrainConfig(**{**base.__dict__, "epochs": args.epochs or (1 if args.tiny else base.epochs),
                         "seed": args.seed})
    if args.from_version:
        _load_previous(model, tower, args)
    if mode == "distil" and not args.from_version:
        model = _distil_from_minilm(tr, va, catalogue.titles, tower)
    else:
        model = fit(model, tower, tr.data, va.data, cfg, f"ad_ctr ({mode})").model
    seconds = time.perf_counter() - start
    test_scores = scores(te.data.label, calibrated(model, te.data, tower))
    metrics = {f"sim_{k}": v for k, v in test_scores.items()} | {
        "sim_truth_auc": float(scores(te.data.label, te.true_ctr)["auc"])}
    shuffled = ":labels=shuffled" if labels == "shuffled" else ""
    info = TrainingInfo(data=f"sim:ads:seed=7:requests={_slices(args)}{shuffled}", rows=len(tr.data), epochs=cfg.epochs,
                        seconds=round(seconds, 2), from_version=args.from_version,
                        extra={"text_tower": mode, "creatives": len(catalogue.titles)})
    text_manifest = export_and_publish(
        TrainedModel(module=tower.encoder, spec=TEXT_SPEC, training=info, variants=()), args.repository)
    return _trained_ctr(model, tower, te, text_manifest, info, metrics, args, seconds)


def _trained_ctr(model: DcnV2, tower: HashTower, te: SimSplit, text_manifest: ModelManifest, info: TrainingInfo,
                 metrics: dict[str, float], args: RecipeArgs, seconds: float) -> TrainedModel:
    text = embed_all(tower, tower.n_titles).numpy()[te.data.creative]
    feeds = {"sparse": te.data.sparse, "text_emb": text.astype(np.float32)}

    def metric_fn(run: RunFn) -> dict[str, float]:
        return {"sim_auc": scores(te.data.label, run(feeds)["pctr"].astype(np.float64))["auc"]}

    calibration = (float(model.cal_a), float(model.cal_b))  # type: ignore[arg-type]
    return TrainedModel(
        module=model, spec=ctr_spec(text_manifest, calibration), training=info, metrics=metrics,
        heldout=[{k: v[:n] for k, v in feeds.items()} for n in (1, 7, 256)], metric_fn=metric_fn,
        variants=args.variants, timings={"train": seconds},
    )


RECIPE = ModelRecipe("ad_ctr", "DCN-v2 CTR model + hashed-token creative text tower on the simulated ads", train)
