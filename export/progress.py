"""Progress bars for training loops and long preparation steps (rich).

Bars go to stderr and disappear from non-interactive output by themselves (rich draws
nothing but the final state there); each epoch's metrics are also logged, so a CI log or a
``--quiet`` run keeps the numbers::

    with TrainingProgress("fraud", epochs=3, steps_per_epoch=len(loader)) as progress:
        for epoch in range(3):
            for batch in loader:
                progress.step(loss=float(loss))
            progress.end_epoch(val_auc=auc)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


def make_progress(enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        disable=not enabled,
    )


class TrainingProgress:
    """An epoch bar and a step bar with the running loss; epoch metrics are logged too."""

    def __init__(self, name: str, epochs: int, steps_per_epoch: int, *, enabled: bool = True) -> None:
        self.name = name
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self._progress = make_progress(enabled)
        self._epoch_task: TaskID | None = None
        self._step_task: TaskID | None = None
        self._epoch = 0
        self._loss_sum = 0.0
        self._loss_n = 0
        self.history: list[dict[str, float]] = []
        """One dict per finished epoch: mean training loss plus the metrics passed in."""

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        self._epoch_task = self._progress.add_task(f"{self.name} epochs", total=self.epochs, status="")
        self._step_task = self._progress.add_task("  steps", total=self.steps_per_epoch, status="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def step(self, loss: float | None = None, advance: int = 1) -> None:
        if loss is not None and math.isfinite(loss):
            self._loss_sum += loss
            self._loss_n += 1
        if self._step_task is not None:
            self._progress.update(self._step_task, advance=advance, status=f"loss {self.mean_loss:.4f}")

    @property
    def mean_loss(self) -> float:
        return self._loss_sum / self._loss_n if self._loss_n else float("nan")

    def end_epoch(self, **metrics: float) -> dict[str, float]:
        """Close the epoch: log its mean loss and ``metrics``, reset the step bar."""
        self._epoch += 1
        record = {"loss": self.mean_loss, **metrics}
        self.history.append(record)
        text = " ".join(f"{k}={v:.4f}" for k, v in record.items())
        logger.info("train model=%s epoch=%d/%d %s", self.name, self._epoch, self.epochs, text)
        if self._epoch_task is not None and self._step_task is not None:
            self._progress.update(self._epoch_task, advance=1, status=text)
            self._progress.reset(self._step_task, total=self.steps_per_epoch, status="")
        self._loss_sum, self._loss_n = 0.0, 0
        return record


def track(items: Iterable[T], total: int | None, description: str, *, enabled: bool = True) -> Iterator[T]:
    """A progress bar over any iterable (data loading, encoding a catalogue...)."""
    with make_progress(enabled) as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)
