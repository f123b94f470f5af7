"""Run the ``shopstream`` command the way people do: a separate process, from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys

from tools.supervisor import REPO_ROOT


def shopstream(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tools.cli.main *args``; ``env`` adds variables to this process's environment."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tools.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=full_env)
