"""Model recipes: how ``shopstream export <model>`` finds what to train.

Each model package declares its recipe in ``export/<package>/recipe.py`` as a module-level
``RECIPE`` (or ``RECIPES``, a sequence). Discovery imports those modules on demand, so no
central list has to be edited when a model is added, and a broken recipe only breaks itself.

A recipe's ``train(args)`` trains or fine-tunes and evaluates, then returns a
:class:`~export.pipeline.TrainedModel`; the export pipeline does export, parity, variants and
publishing, so every model goes through the same gate.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import ConfigError
from shared.models.repository import ModelRepository

if TYPE_CHECKING:
    from export.pipeline import TrainedModel

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class RecipeArgs:
    """What the export command passes a recipe."""

    models_dir: Path = Path("models")
    data_dir: Path = DEFAULT_DATA_DIR
    """Real data sets (``<data_dir>/<set>/``); recipes must also work from simulated data."""
    from_version: str | None = None
    """Fine-tune from this version's checkpoint (``export.checkpoint.load_from_version``)."""
    epochs: int | None = None
    """Override the recipe's default number of epochs."""
    tiny: bool = False
    """A seconds-long configuration for tests and smoke runs."""
    seed: int = 0
    variants: tuple[str, ...] = ("fp16", "int8")
    progress: bool = True
    options: dict[str, str] = field(default_factory=dict)
    """Recipe-specific ``--set key=value`` options."""

    @property
    def repository(self) -> ModelRepository:
        return ModelRepository(self.models_dir)


@dataclass(frozen=True)
class ModelRecipe:
    """A trainable model the export command knows by name."""

    name: str
    description: str
    train: Callable[[RecipeArgs], TrainedModel]


_registered: dict[str, ModelRecipe] = {}
_broken: dict[str, Exception] = {}


def register(recipe: ModelRecipe) -> ModelRecipe:
    """Add a recipe by hand (tests, plugins); discovered recipes need no call."""
    _registered[recipe.name] = recipe
    return recipe


def discover() -> dict[str, ModelRecipe]:
    """Every recipe: registered ones plus ``RECIPE``/``RECIPES`` of ``export.*.recipe`` modules."""
    import export

    for info in pkgutil.iter_modules(export.__path__):
        if info.ispkg and f"export.{info.name}" not in _broken:
            _import_recipes(f"export.{info.name}.recipe")
    return dict(sorted(_registered.items()))


def _import_recipes(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the recipe exists but one of its imports is missing
            _broken[module_name.rsplit(".", 1)[0]] = exc
        return
    except Exception as exc:  # keep other models usable; the error is shown if this one is asked for
        _broken[module_name.rsplit(".", 1)[0]] = exc
        logger.warning("recipe module %s failed to import: %s", module_name, exc)
        return
    found = list(getattr(module, "RECIPES", ()))
    if isinstance(getattr(module, "RECIPE", None), ModelRecipe):
        found.append(module.RECIPE)
    for recipe in found:
        _registered.setdefault(recipe.name, recipe)


def get(name: str) -> ModelRecipe:
    recipes = discover()
    if name in recipes:
        return recipes[name]
    broken = _broken.get(f"export.{name}")
    if broken is not None:
        raise ConfigError(f"recipe {name!r} could not be imported: {type(broken).__name__}: {broken}") from broken
    raise ConfigError(f"no export recipe named {name!r}; known: {', '.join(recipes) or 'none'}")
