"""What an image built from the Dockerfile contains, measured without a container engine.

    python deploy/image_contents.py cpu                       # build the cpu target's files under /tmp
    python deploy/image_contents.py gpu tools --work /tmp/img
    python deploy/image_contents.py cpu --root /tmp/old-src   # another checkout (e.g. a `git archive`)

For the target and every stage it builds on, this replays the Dockerfile on the local file system:
each stage gets a directory standing for its root file system; ``COPY`` from the build context
honours ``.dockerignore``; ``COPY --from`` copies another stage's directory; ``RUN`` runs the same
commands, with the container paths (``/opt/venv``, ``/dist``, ``/src``, ...) rewritten into the stage's
directory and ``python``/``python3.11`` being the Python 3.11 that runs this script. Base-image
system setup (``apt-get``, ``useradd``) is skipped: it belongs to the base image, whose size is
published separately (docs/deployment.md). Prints ``du`` of what the target stage added.

``stage_context`` (the build-context part only, no ``RUN``) is what tests/unit/test_deploy_image.py
checks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_RUN = re.compile(r"^\s*(apt-get|useradd)\b")


@dataclass
class Stage:
    name: str
    base: str
    ops: list[tuple[str, str]] = field(default_factory=list)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments and parser directives dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def stages(dockerfile: Path) -> dict[str, Stage]:
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for op, args in instructions(dockerfile):
        if op == "FROM":
            words = args.split()
            current = Stage(name=words[-1], base=words[0])
            out[current.name] = current
        elif current is not None:
            current.ops.append((op, args))
    return out


def chain(all_stages: dict[str, Stage], target: str) -> list[Stage]:
    """The stages ``target`` is built FROM, oldest first, ending with ``target``."""
    out = [all_stages[target]]
    while out[0].base in all_stages:
        out.insert(0, all_stages[out[0].base])
    return out


def ignore_rules(root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(re-include?, pattern) per ``.dockerignore`` line, in order; the last match wins."""
    path = root / ".dockerignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    rules = []
    for line in (ln.strip() for ln in lines):
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = re.sub(r"\\\*\\\*/|\\\*\\\*|\\\*|\\\?", lambda m: {"\\*\\*/": "(.*/)?", "\\*\\*": ".*",
                                                                  "\\*": "[^/]*", "\\?": "[^/]"}[m.group(0)],
                       re.escape(pattern))
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def in_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a path is in the build context: a rule applies when it matches the path or a parent."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            included = negated
    return included


def _container(stage_root: Path, path: str, workdir: str) -> Path:
    absolute = path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"
    return stage_root / absolute.lstrip("/")


def _copy_context(root: Path, sources: list[str], dest: Path, dest_is_dir: bool) -> None:
    rules = ignore_rules(root)
    matched = [p for s in sources for p in sorted(root.glob(s.rstrip("/")))]
    for src in matched:
        if not in_context(src.relative_to(root).as_posix(), rules) and not src.is_dir():
            continue
        if src.is_dir():
            for file in sorted(f for f in src.rglob("*") if f.is_file()):
                relative = file.relative_to(root).as_posix()
                if in_context(relative, rules):
                    target = dest / file.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)
        else:
            target = dest / src.name if dest_is_dir else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def _copy_tree(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


def dependencies(all_stages: dict[str, Stage], target: str) -> list[Stage]:
    """``target`` and every stage it is built FROM or copies ``--from``, in Dockerfile order."""
    needed, todo = set(), [target]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        stage = all_stages[name]
        todo += [stage.base] if stage.base in all_stages else []
        todo += [args.split()[0][len("--from="):] for op, args in stage.ops
                 if op == "COPY" and args.startswith("--from=")]
    return [stage for name, stage in all_stages.items() if name in needed]


def stage_context(target: str, out: Path, root: Path = ROOT) -> Path:
    """Copy into ``out`` what the ``COPY`` instructions of ``target`` and of every stage it depends on
    take from the build context (not ``--from`` another stage), laid out as in the container (the
    builders' ``/src``, the image's ``/app``); returns ``out``."""
    workdirs: dict[str, str] = {}
    for stage in dependencies(stages(root / "Dockerfile"), target):
        workdir = workdirs.get(stage.base, "/")
        for op, args in stage.ops:
            if op == "WORKDIR":
                workdir = args.strip()
            elif op == "COPY" and not args.startswith("--"):
                *sources, dest = args.split()
                _copy_context(root, sources, _container(out, dest, workdir), dest.endswith("/") or len(sources) > 1)
        workdirs[stage.name] = workdir
    return out


def _rewrite(command: str, stage_root: Path) -> str:
    """Container absolute paths → the stage directory; pip runs as ``<venv>/bin/python -m pip``."""
    command = re.sub(r"(?<![\w./])(/opt/venv)/bin/pip\b", r"\1/bin/python -m pip", command)
    return re.sub(r"(?<![\w./])/(?=[A-Za-z])", f"{stage_root}/", command)


def build(target: str, work: Path, root: Path = ROOT, python: str = sys.executable) -> Path:
    """Replay ``target``'s chain of stages under ``work/<stage>``; returns the target's directory."""
    all_stages = stages(root / "Dockerfile")
    shim = work / ".bin"
    shim.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3", "python3.11"):
        (shim / name).unlink(missing_ok=True)
        (shim / name).symlink_to(python)
    built: dict[str, Path] = {}
    workdirs: dict[str, str] = {}

    def run_stage(name: str) -> Path:
        if name in built:
            return built[name]
        stage = all_stages[name]
        stage_root = work / name
        shutil.rmtree(stage_root, ignore_errors=True)
        if stage.base in all_stages:
            shutil.copytree(run_stage(stage.base), stage_root, symlinks=True)
        stage_root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
        env.pop("VIRTUAL_ENV", None)
        workdir = workdirs.get(stage.base, "/")
        for op, args in stage.ops:
            if op == "WORKDIR":
                workdir = args.strip()
                _container(stage_root, workdir, "/").mkdir(parents=True, exist_ok=True)
            elif op == "ENV":
                for key, value in re.findall(r"(\w+)=(\S+)", args):
                    if key.startswith("PIP_"):
                        env[key] = value
            elif op == "COPY" and args.startswith("--from="):
                source_stage, src, dest = args[len("--from="):].split()
                _copy_tree(_container(run_stage(source_stage), src, "/"), _container(stage_root, dest, workdir))
            elif op == "COPY":
                *sources, dest = args.split()
                _copy_context(root, sources, _container(stage_root, dest, workdir),
                              dest.endswith("/") or len(sources) > 1)
            elif op == "RUN" and not SKIPPED_RUN.match(args):
                command = _rewrite(args, stage_root)
                print(f"[{name}] {command}", file=sys.stderr, flush=True)
                subprocess.run(["sh", "-ec", command], cwd=_container(stage_root, workdir, "/"), env=env, check=True,
                               stdout=sys.stderr)
        built[name], workdirs[name] = stage_root, workdir
        return stage_root

    return run_stage(target)


def du(path: Path) -> int:
    """Bytes on disk, as ``du -s`` counts them (hard links once)."""
    result = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[0])


@dataclass
class Report:
    target: str
    copied: dict[str, int]
    """Container path a ``COPY`` of the target stage wrote → bytes."""
    site_packages: dict[str, int]
    """Top-level entry of the venv's site-packages → bytes, largest first."""
    distributions: list[str]

    @property
    def total_bytes(self) -> int:
        return sum(self.copied.values())


def report(target_root: Path, target: str, root: Path) -> Report:
    stage = stages(root / "Dockerfile")[target]
    added = [args.split()[-1] for op, args in stage.ops if op == "COPY"]
    copied = {dest: du(_container(target_root, dest, "/")) for dest in added if dest.startswith("/")}
    site = next((target_root / "opt/venv/lib").glob("python3*/site-packages"), None)
    packages: dict[str, int] = {}
    dists: list[str] = []
    if site is not None:
        for entry in sorted(site.iterdir()):
            if entry.name.endswith((".dist-info", ".pth")) or entry.name in {"__pycache__", "_distutils_hack"}:
                continue
            packages[entry.name] = du(entry)
        dists = sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))
    return Report(target, copied, dict(sorted(packages.items(), key=lambda kv: -kv[1])), dists)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", help="Dockerfile stages to build (cpu, gpu, tools, ...)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/shopstream-image"), help="scratch directory")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose Dockerfile is replayed")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        print("run this with Python 3.11, the images' Python", file=sys.stderr)
        return 2
    for target in args.targets:
        result = report(build(target, args.work, args.root.resolve()), target, args.root.resolve())
        if args.json:
            print(json.dumps({**asdict(result), "total_bytes": result.total_bytes}, indent=2))
            continue
        mib = 1024 * 1024
        print(f"== {target}: {result.total_bytes / mib:.1f} MiB on top of the base image")
        for dest, size in result.copied.items():
            print(f"  {size / mib:8.1f} MiB  {dest}")
        print("  site-packages, 0.1 MiB and more, largest first:")
        for name, size in result.site_packages.items():
            if size >= mib // 10:
                print(f"  {size / mib:8.1f} MiB    {name}")
        print("  distributions: " + " ".join(result.distributions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
