"""The scorer example of docs/models.md, run from the doc itself so the doc stays true."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def documented_scorer() -> dict[str, Any]:
    """The names the doc's example defines (``LinearScorer``, ``LinearSettings``, ``Features``)."""
    section = DOC.read_text().split("## Scorers on a model", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "docs/models.md lost its scorer example"
    namespace: dict[str, Any] = {"__name__": "models_doc_example"}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)
    return namespace


EXAMPLE = documented_scorer()
