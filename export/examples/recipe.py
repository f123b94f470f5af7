"""Recipes of the reference models: ``shopstream export tiny`` and ``shopstream export mlp``."""

from __future__ import annotations

from export.examples.tiny_mlp import MLP, TINY, train
from export.pipeline import TrainedModel
from export.registry import ModelRecipe, RecipeArgs


def _train_tiny(args: RecipeArgs) -> TrainedModel:
    return train(TINY, args)


def _train_mlp(args: RecipeArgs) -> TrainedModel:
    return train(MLP, args)


RECIPES = (
    ModelRecipe("tiny", "2-layer MLP on synthetic logistic data (~160 params; tests)", _train_tiny),
    ModelRecipe("mlp", "4-layer MLP on synthetic logistic data (~99k params; benchmarks)", _train_mlp),
)
