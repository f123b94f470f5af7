"""Where a cluster's nodes live and which ports they use, persisted so a restart finds them again.

``<root>/cluster.json`` records the cluster id and every node's ports; a cluster started
again on the same ``root`` (a persistent ``data_dir``) reuses them, so clients and the
static controller quorum see the same addresses as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tools.broker.errors import HarnessError
from tools.broker.kafka.config import ListenerSpec, NodeSpec, free_ports, voters_of
from tools.broker.kafka.node import random_cluster_id

_LAYOUT = "cluster.json"


@dataclass(frozen=True)
class Layout:
    cluster_id: str
    specs: tuple[NodeSpec, ...]


def plan_layout(root: Path, size: int, ports: Sequence[int] | None, extra_listeners: Sequence[ListenerSpec],
                overrides: Mapping[str, str]) -> Layout:
    """The layout saved under ``root``, or a fresh one; explicit ``ports`` win over saved ones.

    An extra listener with ``port=0`` gets a free port per node.
    """
    saved = _load(root)
    if saved is not None and len(saved["nodes"]) != size:
        raise HarnessError(f"{root} holds a {len(saved['nodes'])}-node cluster, not {size}")
    fresh = free_ports(size * (2 + len(extra_listeners)))
    node_ids = list(range(1, size + 1))
    specs = []
    for index, node_id in enumerate(node_ids):
        old = saved["nodes"][index] if saved else None
        port = ports[index] if ports else (old["port"] if old else fresh.pop())
        controller_port = old["controller_port"] if old else fresh.pop()
        extras = tuple(_listener_port(spec, old, fresh) for spec in extra_listeners)
        specs.append(NodeSpec(node_id, port, controller_port, root / f"node-{node_id}", voters=(),
                              extra_listeners=extras, overrides=dict(overrides)))
    voters = voters_of(node_ids, [spec.controller_port for spec in specs])
    layout = Layout(saved["cluster_id"] if saved else random_cluster_id(),
                    tuple(replace(spec, voters=voters) for spec in specs))
    _save(root, layout)
    return layout


def _listener_port(spec: ListenerSpec, old: dict[str, Any] | None, fresh: list[int]) -> ListenerSpec:
    if spec.port:
        return spec
    saved_ports = old.get("extra", {}) if old else {}
    port = saved_ports.get(spec.name) if isinstance(saved_ports, dict) else None
    return replace(spec, port=int(port) if port else fresh.pop())


def _load(root: Path) -> dict[str, Any] | None:
    path = root / _LAYOUT
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"unreadable harness layout {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise HarnessError(f"unexpected harness layout in {path}")
    return data


def _save(root: Path, layout: Layout) -> None:
    root.mkdir(parents=True, exist_ok=True)
    nodes = [{"node_id": s.node_id, "port": s.port, "controller_port": s.controller_port,
              "extra": {listener.name: listener.port for listener in s.extra_listeners}} for s in layout.specs]
    (root / _LAYOUT).write_text(json.dumps({"cluster_id": layout.cluster_id, "nodes": nodes}, indent=2) + "\n")
