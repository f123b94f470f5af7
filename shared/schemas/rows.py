"""Output records encoded in bulk from columns, with the pydantic model still their schema.

Building one pydantic model per output record and serialising it cost a scorer 3 to 6 µs a record,
more than the model itself for most services. A :class:`RowEncoder` writes the same JSON from
columns instead: the field names, their order and the defaults come from the output model, so the
model stays the one source of truth (and the JSON Schema files generated from it describe these
bytes; ``tests/unit/test_row_encoding.py`` checks sampled records against both).

What the model would have checked on every record is checked here per batch: every field is
given (or has a default), no float column holds NaN or infinity (orjson would write ``null``),
and the first record of each batch is validated by the model itself, so a scorer that starts
writing something the schema refuses fails its batch loudly instead of publishing it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Generic, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from shared.errors import ScoringError

M = TypeVar("M", bound=BaseModel)


class Constant:
    """A value every record of the batch shares (a model version, say): written once, not per row."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


Column = Sequence[Any] | np.ndarray | Constant


class RowEncoder(Generic[M]):
    """Encodes rows of ``model`` (an output record class) to JSON bytes, a batch at a time."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.fields: tuple[str, ...] = tuple(model.model_fields)
        self._defaults: dict[str, Any] = {
            name: info.default
            for name, info in model.model_fields.items()
            if info.default is not PydanticUndefined
        }

    def encode(self, rows: int, columns: Mapping[str, Column]) -> list[bytes]:
        """``rows`` records, field by field from ``columns`` (a sequence or array of ``rows`` values, or
        a :class:`Constant`); fields left out take the model's default. Raises :class:`ScoringError`."""
        unknown = set(columns) - set(self.fields)
        if unknown:
            raise ScoringError(f"{self.model.__name__} has no field(s) {sorted(unknown)}")
        values = [self._column(name, rows, columns) for name in self.fields]
        names = self.fields
        encoded = [orjson.dumps(dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)]
        if encoded:
            self._check(encoded[0])
        return encoded

    def _column(self, name: str, rows: int, columns: Mapping[str, Column]) -> Iterable[Any]:
        if name not in columns:
            if name not in self._defaults:
                raise ScoringError(f"{self.model.__name__}.{name} is required and was not given")
            return repeat(self._defaults[name], rows)
        column = columns[name]
        if isinstance(column, Constant):
            return repeat(column.value, rows)
        if isinstance(column, np.ndarray):
            if column.dtype.kind == "f" and not np.isfinite(column).all():
                raise ScoringError(f"{self.model.__name__}.{name} has non-finite values")
            column = column.tolist()
        elif column and isinstance(column[0], float) and not all(map(math.isfinite, column)):
            raise ScoringError(f"{self.model.__name__}.{name} has non-finite values")
        if len(column) != rows:
            raise ScoringError(f"{self.model.__name__}.{name} has {len(column)} values for {rows} records")
        return column

    def _check(self, record: bytes) -> None:
        try:
            self.model.model_validate_json(record)
        except ValidationError as exc:
            raise ScoringError(f"an encoded {self.model.__name__} breaks its schema: {exc}") from exc
