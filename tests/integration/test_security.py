"""Authenticated, encrypted, least-privilege Kafka, and hostile input through a running service.

One broker with an extra ``SECURE`` listener (certificates made at test time, see
:mod:`tools.broker.tls`). The echo service connects there with a SCRAM user whose ACLs
allow reading its input as its group and writing its output and DLQ — nothing else. The
harness's PLAINTEXT listener is the admin path (topics, users, ACLs, verification), and the
hostile-stream test runs there too, so this module needs one broker for both.
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.schemas import headers as h
from tools.broker.kafka import KafkaBroker
from tools.broker.kafka.admin import create_topics
from tools.broker.kafka.security import (
    SECURE_LISTENER,
    ServiceAccess,
    add_scram_user,
    grant,
    revoke,
    secure_listener,
    secure_overrides,
    service_acls,
)
from tools.broker.tls import GeneratedPki, make_test_pki
from tools.supervisor import REPO_ROOT, ServiceProcess, collect, produce, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class SecureKafka:
    admin_bootstrap: str
    secure_bootstrap: str
    pki: GeneratedPki


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    pki = make_test_pki(tmp_path_factory.mktemp("pki"))
    with KafkaBroker(extra_listeners=[secure_listener()], overrides=secure_overrides(pki)) as broker:
        yield SecureKafka(broker.bootstrap_servers, broker.bootstrap_for(SECURE_LISTENER), pki)


@dataclass(frozen=True)
class Account:
    user: str
    password: str
    access: ServiceAccess


def new_account(kafka: SecureKafka, grant_input: bool = True, exactly_once: bool = False) -> Account:
    """A SCRAM user with its own topics, and ACLs for exactly those (optionally not the input;
    with its transactional ids for exactly-once)."""
    name = f"sec-{uuid.uuid4().hex[:10]}"
    topics = {name: 2, f"{name}.out": 2, f"{name}.dlq": 2}
    create_topics(kafka.admin_bootstrap, topics)
    user, password = f"svc-{name}", secrets.token_urlsafe(24)
    add_scram_user(kafka.admin_bootstrap, user, password)
    access = ServiceAccess(user, f"g-{name}", [name], [f"{name}.out", f"{name}.dlq"])
    bindings = service_acls(access, exactly_once)
    if not grant_input:
        bindings = [b for b in bindings if b.name != name]
    grant(kafka.admin_bootstrap, bindings)
    return Account(user, password, access)


class SecretsDirService(ServiceProcess):
    """``shopstream serve echo --secrets-dir DIR``: the password comes from a mounted file."""

    def __init__(self, settings_env: dict[str, str], secrets_dir: Path, log_path: Path) -> None:
        super().__init__("echo", settings_env, log_path)
        self.secrets_dir = secrets_dir

    def start(self) -> SecretsDirService:
        assert self.log_path is not None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tools.cli.main", "serve", "echo", "--secrets-dir", str(self.secrets_dir)],
                env=self.env, cwd=REPO_ROOT, stdout=log, stderr=log,
            )
        return self


def secure_env(kafka: SecureKafka, account: Account, input_topic: str) -> dict[str, str]:
    return {
        "INPUT_TOPIC": input_topic, "OUTPUT_TOPIC": account.access.writes[0], "DLQ_TOPIC": account.access.writes[1],
        "GROUP_ID": account.access.group, "RUNTIME__CREATE_TOPICS": "false",
        "KAFKA__BOOTSTRAP_SERVERS": kafka.secure_bootstrap, "KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA__SASL_USERNAME": account.user,
        "KAFKA__SSL_CA_LOCATION": str(kafka.pki.ca_pem),
    }


def write_secret(directory: Path, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "SHOPSTREAM_ECHO_KAFKA__SASL_PASSWORD").write_text(password + "\n")
    return directory


def events(count: int, start: int = 0) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"u{i}".encode(), json.dumps({"id": f"u{i}", "value": float(i)}).encode())
            for i in range(start, start + count)]


def assert_secret_absent(password: str, *texts: str) -> None:
    for text in texts:
        assert password not in text, "the SASL password leaked"
        assert password[:8] not in text, "a prefix of the SASL password leaked"


def test_scram_over_tls_with_least_privilege_acls_scores_and_never_shows_the_password(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    account = new_account(secure_kafka)
    topic = account.access.reads[0]
    secrets_dir = write_secret(tmp_path / "secrets", account.password)
    env = secure_env(secure_kafka, account, topic) | {"LOG_JSON": "false"}
    log = tmp_path / "echo.log"
    with SecretsDirService(env, secrets_dir, log) as service:
        service.wait_ready(90)
        produce(secure_kafka.admin_bootstrap, topic, [*events(500), (b"u-bad", b"{not json")])
        out = collect(secure_kafka.admin_bootstrap, [f"{topic}.out", f"{topic}.dlq"],
                      lambda rs: len(rs) >= 501, timeout_s=60)
        metrics = service.metrics()
        assert service.terminate() == 0
    assert sum(r.topic.endswith(".out") for r in out) == 500
    assert sum(r.topic.endswith(".dlq") for r in out) == 1
    assert_secret_absent(account.password, log.read_text(errors="replace"), metrics)
    assert "SASL_SSL" not in metrics  # metrics carry no connection settings at all


def test_a_service_configured_for_a_topic_it_may_not_read_is_denied_and_says_so(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    account = new_account(secure_kafka, grant_input=False)
    secrets_dir = write_secret(tmp_path / "secrets", account.password)
    log = tmp_path / "echo.log"
    produce(secure_kafka.admin_bootstrap, account.access.reads[0], events(10))
    with SecretsDirService(secure_env(secure_kafka, account, account.access.reads[0]), secrets_dir, log) as svc:
        said_so = wait_until(lambda: "authoriz" in log.read_text(errors="replace").lower(), 60)
        time.sleep(3)
        ready = svc.ready()
        alive = svc.alive()
    text = log.read_text(errors="replace")
    print(f"\n[denied topic] alive={alive} ready={ready} log tail:\n{text[-800:]}")
    assert said_so, "the log must name the authorization failure"
    assert not ready, "a service that may not read its input must not report ready"
    assert_secret_absent(account.password, text)


def test_a_wrong_password_fails_clearly_without_leaking_either_password(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    account = new_account(secure_kafka)
    wrong = secrets.token_urlsafe(24)
    log = tmp_path / "echo.log"
    env = secure_env(secure_kafka, account, account.access.reads[0])
    with SecretsDirService(env, write_secret(tmp_path / "secrets", wrong), log) as service:
        said_so = wait_until(lambda: "authentication" in log.read_text(errors="replace").lower(), 60)
        time.sleep(2)
        ready = service.ready()
    text = log.read_text(errors="replace")
    assert said_so, f"the log must name the authentication failure:\n{text[-800:]}"
    assert not ready
    assert_secret_absent(wrong, text)
    assert_secret_absent(account.password, text)


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_revoked_output_acl_stops_commits_until_it_is_granted_again(
    secure_kafka: SecureKafka, tmp_path: Path, delivery: str
) -> None:
    """Exactly-once too: ``produce`` refused inside a transaction aborts it and pauses, no exit."""
    from confluent_kafka import Consumer, TopicPartition

    exactly_once = delivery == "exactly_once"
    account = new_account(secure_kafka, exactly_once=exactly_once)
    topic, out_topic = account.access.reads[0], account.access.writes[0]
    write_acls = [b for b in service_acls(account.access) if b.name == out_topic]
    env = secure_env(secure_kafka, account, topic) | {"RUNTIME__DELIVERY": delivery}

    def committed() -> int:
        consumer = Consumer({"bootstrap.servers": secure_kafka.admin_bootstrap, "group.id": account.access.group})
        try:
            parts = consumer.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
        finally:
            consumer.close()
        return sum(max(tp.offset, 0) for tp in parts)

    with SecretsDirService(env, write_secret(tmp_path / "secrets", account.password), tmp_path / "echo.log") as svc:
        svc.wait_ready(90)
        produce(secure_kafka.admin_bootstrap, topic, events(200))
        assert wait_until(lambda: committed() == 200, 60)
        assert revoke(secure_kafka.admin_bootstrap, write_acls) == len(write_acls)
        produce(secure_kafka.admin_bootstrap, topic, events(300, start=200))
        time.sleep(8)
        blocked = committed()
        published = len(collect(secure_kafka.admin_bootstrap, [out_topic], lambda rs: False, timeout_s=4))
        grant(secure_kafka.admin_bootstrap, write_acls)
        regranted = time.monotonic()
        out = collect(secure_kafka.admin_bootstrap, [out_topic],
                      lambda rs: len({r.key for r in rs}) >= 500, timeout_s=90)
        recovered_s = time.monotonic() - regranted
        assert svc.alive()
        log_text = (tmp_path / "echo.log").read_text(errors="replace")
    assert "Traceback" not in log_text, "the service must pause, not crash and restart"
    print(f"\n[ACL revoked, {delivery}] committed while revoked={blocked} published={published}; "
          f"all 500 scored {recovered_s:.1f}s after the re-grant ({len(out)} records, "
          f"{len(out) - len({r.key for r in out})} duplicates)")
    assert blocked <= published, "input was committed without its output"
    assert len({r.key for r in out}) == 500


def hostile_records(count: int, seed: int) -> list[tuple[str, bytes | None, bytes | None]]:
    """``count`` bad records of every kind a hostile producer can send: (kind, key, value)."""
    rng = random.Random(seed)
    good = json.dumps({"id": "x1", "value": 1.0})
    makers: dict[str, Callable[[int], tuple[bytes | None, bytes | None]]] = {
        "malformed_json": lambda i: (b"x1", good[: rng.randrange(1, len(good) - 1)].encode()),
        "invalid_utf8": lambda i: (b"x1", good.encode().replace(b"x1", b"x\xff\xfe", 1)),
        "nan": lambda i: (b"x1", good.replace("1.0", rng.choice(["NaN", "Infinity", "-Infinity"])).encode()),
        "huge_number": lambda i: (b"x1", good.replace("1.0", "9" * rng.randrange(400, 5000)).encode()),
        "deep_nesting": lambda i: (b"x1", good.replace("1.0", "[" * 5000 + "]" * 5000).encode()),
        "wrong_type": lambda i: (b"x1", good.replace("1.0", rng.choice(['"abc"', "{}", "[1]", "null"])).encode()),
        "missing_field": lambda i: (b"x1", b'{"value": 1.0}'),
        "unknown_field": lambda i: (b"x1", good.replace("}", ', "admin": true}').encode()),
        "duplicate_key": lambda i: (b"x1", good.replace("}", ', "id": "mallory"}').encode()),
        "huge_string": lambda i: (b"x1", json.dumps({"id": "x1", "payload": "p" * 200_000}).encode()),
        "missing_key": lambda i: (None, good.encode()),
        "non_utf8_key": lambda i: (b"\xff\xfe", good.encode()),
        "key_mismatch": lambda i: (f"other{i}".encode(), good.encode()),
        "tombstone": lambda i: (b"x1", None),
    }
    kinds = sorted(makers)
    return [(kind, *makers[kind](i)) for i, kind in ((i, kinds[i % len(kinds)]) for i in range(count))]


def test_a_mixed_hostile_stream_dead_letters_every_bad_record_and_scores_every_good_one(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    bootstrap = secure_kafka.admin_bootstrap  # the hostile producer needs no credentials here
    topic = f"hostile-{uuid.uuid4().hex[:10]}"
    create_topics(bootstrap, {topic: 2, f"{topic}.out": 2, f"{topic}.dlq": 2})
    good = events(2000)
    bad = hostile_records(560, seed=7)
    mixed = good + [(k, v) for _, k, v in bad]
    random.Random(3).shuffle(mixed)
    # An uncompressed record over the broker's message.max.bytes never gets in at all...
    with pytest.raises(RuntimeError, match=r"MSG_SIZE_TOO_LARGE|too large"):
        produce(bootstrap, topic, [(b"x1", b"{" + b" " * 2_000_000 + b"}")], message_max_bytes=5_000_000)
    # ...but a compressed one is checked by its compressed size: 2 MB of JSON, and a 30 MB
    # zstd bomb of ~1 kB, reach the consumer whole and must be refused by the runtime.
    bombs: list[tuple[bytes | None, bytes | None]] = [
        (b"x1", json.dumps({"id": "x1", "payload": "A" * 2_000_000}).encode()),
        (b"x1", b'{"id": "x1", "payload": "' + b"0" * 30_000_000 + b'"}'),
    ]
    env = {"INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.out", "GROUP_ID": f"g-{topic}",
           "KAFKA__BOOTSTRAP_SERVERS": bootstrap, "RUNTIME__CREATE_TOPICS": "false"}
    with ServiceProcess("echo", env, tmp_path / "echo.log") as service:
        service.wait_ready(90)
        started = time.monotonic()
        produce(bootstrap, topic, mixed)
        produce(bootstrap, topic, bombs, compression_type="zstd", message_max_bytes=40_000_000)
        expected_bad = len(bad) + len(bombs)
        out = collect(bootstrap, [f"{topic}.out", f"{topic}.dlq"],
                      lambda rs: sum(r.topic.endswith(".dlq") for r in rs) >= expected_bad
                      and sum(r.topic.endswith(".out") for r in rs) >= len(good), timeout_s=120)
        elapsed = time.monotonic() - started
        assert service.alive(), "hostile input must not crash the service"
        assert service.ready()
    letters = [r for r in out if r.topic.endswith(".dlq")]
    scored = {json.loads(r.value or b"{}")["id"] for r in out if r.topic.endswith(".out")}
    reasons = Counter(r.headers.get(h.ERROR_REASON, b"").decode() for r in letters)
    print(f"\n[hostile stream] good={len(good)} scored={len(scored)} bad={expected_bad} "
          f"dead-lettered={len(letters)} in {elapsed:.1f}s; reasons={dict(reasons)}")
    assert scored == {f"u{i}" for i in range(2000)}, "every good record around the bad ones is scored"
    assert len(letters) == expected_bad and "" not in reasons, "every bad record is on the DLQ with a reason"
    assert reasons["oversized"] == 2
    assert max(len(r.value or b"") for r in letters) < 1_000_000  # dead letters of bombs are cut
