"""Each service runs as the container image runs it: a read-only root file system with only
/tmp writable (a private mount namespace, since there is no container engine here), scores
real events, and exits 0 on SIGTERM."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shared.runtime.restore import ensure_topics
from shared.settings import KafkaSettings
from tools.loadgen.generator import sim_records
from tools.supervisor import free_port, http_get, produce, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STREAM_OF = {"recommendation": "clickstream", "ad_ctr": "ads", "pricing": "pricing", "fraud": "payments",
             "support": "support"}
EVENTS = 200


def counted(port: int, family: str) -> float:
    lines = http_get(port, "/metrics")[1].splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(f"{family}{{"))


def handled(port: int) -> bool:
    """Every event was scored or dead-lettered, and most were scored."""
    scored = counted(port, "shopstream_events_scored_total")
    dead = counted(port, "shopstream_events_dead_lettered_total")
    return scored + dead >= EVENTS and scored >= 0.9 * EVENTS


@pytest.mark.parametrize("service", sorted(STREAM_OF))
def test_service_scores_on_a_read_only_root_with_only_tmp_writable(
    service: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    assert os.geteuid() == 0 and shutil.which("unshare"), "needs root and util-linux unshare (as CI has)"
    prefix, port = f"rofs{uuid.uuid4().hex[:8]}", free_port()
    env_prefix = f"SHOPSTREAM_{service.upper()}_"
    records = [(f"{prefix}.{topic}", r) for topic, r in itertools.islice(sim_records(STREAM_OF[service], 3), EVENTS)]
    topic = records[0][0]
    ensure_topics(KafkaSettings(bootstrap_servers=kafka_bootstrap), {topic: (2, {})})
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT),
           f"{env_prefix}KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, f"{env_prefix}METRICS__PORT": str(port),
           f"{env_prefix}MODELS_DIR": str(ROOT / "models"), f"{env_prefix}INPUT_TOPIC": topic,
           f"{env_prefix}GROUP_ID": prefix, f"{env_prefix}RUNTIME__SESSION_TIMEOUT_MS": "6000"}
    probe = ROOT / f".{prefix}-probe"
    # The shell starts in ROOT; after /tmp becomes a fresh tmpfs, "." still names the original
    # checkout, so it is bound back at its path (the clone may itself live under /tmp) and then
    # made read-only like the rest of the root file system.
    script = (f"mount --make-rprivate / && mount -t tmpfs tmpfs /tmp && mkdir -p {ROOT} && "
              f"mount --no-canonicalize --bind . {ROOT} && cd {ROOT} && mount -o remount,bind,ro / && "
              f"mount -o remount,bind,ro {ROOT} && "
              f"if touch {probe} 2>/dev/null; then echo ROOT-WRITABLE; exit 3; fi; "
              f"exec {sys.executable} -m tools.cli.main serve {service}")
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], env=env, cwd=ROOT, stdout=log,
                                stderr=log)
        try:
            ready = wait_until(lambda: http_get(port, "/readyz")[0] == 200 or proc.poll() is not None, 180, 0.5)
            assert ready and proc.poll() is None, log_path.read_text()[-3000:]
            produce(kafka_bootstrap, topic, [r for _, r in records])
            assert wait_until(lambda: handled(port), 120, 0.5), log_path.read_text()[-3000:]
        finally:
            proc.terminate()
            code = proc.wait(60)
    assert code == 0, log_path.read_text()[-3000:]
    assert not probe.exists()
