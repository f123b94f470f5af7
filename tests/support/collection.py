"""What pytest collects under a folder: each test's id, markers and fixture closure, as JSON.

Run as ``python -m tests.support.collection <folder> <out.json>`` in a process of its own, so a
test can inspect the suite without nesting a pytest session in its own.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class CollectedTest:
    nodeid: str
    markers: list[str]
    fixtures: list[str]
    """Every fixture the test uses, directly or through other fixtures."""


class _Recorder:
    def __init__(self) -> None:
        self.tests: list[CollectedTest] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            markers = sorted({m.name for m in item.iter_markers()})
            fixtures = sorted(getattr(item, "fixturenames", ()))
            self.tests.append(CollectedTest(item.nodeid, markers, fixtures))


def collect(folder: str) -> list[CollectedTest]:
    """Collect ``folder`` in this process (no test runs); raise if collection fails."""
    recorder = _Recorder()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", folder], plugins=[recorder])
    if code != pytest.ExitCode.OK:
        raise RuntimeError(f"collecting {folder} failed with {code!r}")
    return recorder.tests


def read(path: Path) -> list[CollectedTest]:
    return [CollectedTest(**row) for row in json.loads(path.read_text())]


if __name__ == "__main__":
    folder, out = sys.argv[1], Path(sys.argv[2])
    out.write_text(json.dumps([asdict(t) for t in collect(folder)]))
