"""Fit + calibrate + evaluate helpers shared by the recipe and the evaluation scripts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from export.ad_ctr.metrics import auc, ece, fit_platt, logloss
from export.ad_ctr.model import CtrConfig, DcnV2
from export.ad_ctr.train import CtrData, TextTower, TrainConfig, TrainResult, predict_logit, train
from services.ad_ctr.features import FeatureSpec

logger = logging.getLogger(__name__)


@dataclass
class Fitted:
    model: DcnV2
    tower: TextTower | None
    result: TrainResult


def new_model(spec: FeatureSpec, text_dim: int = 0, cross_layers: int = 2, seed: int = 0,
              base_rate: float = 0.04) -> DcnV2:
    torch.manual_seed(seed)
    cfg = CtrConfig(vocab_size=spec.vocab_size, n_fields=len(spec.fields), cross_layers=cross_layers,
                    text_dim=text_dim, embed_dim=8, hidden=(64, 32))
    model = DcnV2(cfg)
    model.init_bias(base_rate)
    return model


def fit(model: DcnV2, tower: TextTower | None, tr: CtrData, va: CtrData, cfg: TrainConfig, label: str) -> Fitted:
    """Train, then fit Platt calibration on the validation logits (stored in the model's buffers)."""
    result = train(model, tr, va, cfg, tower=tower, label=label)
    a, b = fit_platt(predict_logit(model, va, tower), va.label)
    model.set_calibration(a, b)
    logger.info("%s: best epoch %d, val AUC %.4f, %.1fs, Platt a=%.3f b=%.3f",
                label, result.best_epoch, max(result.val_auc), result.seconds, a, b)
    return Fitted(model, tower, result)


def calibrated(model: DcnV2, data: CtrData, tower: TextTower | None = None) -> np.ndarray:
    logit = predict_logit(model, data, tower)
    a, b = float(model.cal_a), float(model.cal_b)  # type: ignore[arg-type]
    return np.asarray(1.0 / (1.0 + np.exp(-(a * logit + b))))


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auc": auc(y, p), "logloss": logloss(y, p), "ece": ece(y, p)}
