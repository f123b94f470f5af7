"""The replay's progress bar: records done of the range's total, on stderr (rich)."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class ReplayProgress(Protocol):
    """Told the range's size once it is resolved, then each batch's records."""

    def start(self, total: int) -> None: ...
    def advance(self, records: int) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, records: int) -> None:
        pass

    def stop(self) -> None:
        pass


class BarProgress:
    """A bar on stderr, so stdout keeps only the summary and the report."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total, rate="")

    def advance(self, records: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, records)
            speed = self._progress.tasks[0].speed
            self._progress.update(self._task, rate=f"{speed:,.0f} records/s" if speed else "")

    def stop(self) -> None:
        self._progress.stop()
