"""The Go example producer (examples/producer-go), built and run the way its README says."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tools.supervisor import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "producer-go"
SCHEMAS = REPO_ROOT / "schemas" / "json"


def build_producer(out_dir: Path) -> Path:
    """``go build`` the example into ``out_dir`` (Go's build cache makes rebuilds take ~1 s).

    Skips the calling test when the Go toolchain is not installed.
    """
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain (`go`) is not on PATH; install Go >= 1.26 to test the Go example producer")
    binary = out_dir / "producer-go"
    started = time.monotonic()
    result = subprocess.run([go, "build", "-o", str(binary), "."], cwd=EXAMPLE, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"go build failed:\n{result.stderr}"
    print(f"go build: {time.monotonic() - started:.1f}s")
    return binary


def run_producer(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The producer with the repository's generated JSON Schemas."""
    return subprocess.run([str(binary), "-schemas", str(SCHEMAS), *args], capture_output=True, text=True,
                          timeout=120)
