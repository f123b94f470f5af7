"""Throwaway TLS material for tests: a CA and a broker certificate for 127.0.0.1/localhost.

Made at test time with the ``openssl`` command line (the ``cryptography`` package is not a
dependency), so no key or certificate is ever committed. The broker gets a PKCS#12 keystore
(what the JVM reads without extra options); clients get the CA as PEM (what librdkafka reads).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.broker.errors import HarnessError

logger = logging.getLogger(__name__)

_SAN = "subjectAltName=IP:127.0.0.1,DNS:localhost"


@dataclass(frozen=True)
class GeneratedPki:
    """Paths of the generated files and the keystore password (random per run)."""

    ca_pem: Path
    broker_cert_pem: Path
    broker_keystore_p12: Path
    keystore_password: str


def _openssl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise HarnessError("the openssl command is needed to make test certificates")
    # the keystore password travels in the environment, not argv (visible to ps)
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
                          env=full_env)
    if proc.returncode != 0:
        raise HarnessError(f"openssl {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def make_test_pki(directory: Path, days: int = 2) -> GeneratedPki:
    """Write ``ca.pem``, ``broker.pem`` and ``broker.p12`` into ``directory``.

    The broker certificate names ``127.0.0.1`` and ``localhost``, so clients can keep hostname
    verification on. Keys are EC P-256: generating them takes milliseconds, unlike RSA.
    """
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(16)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days),
             "-subj", "/CN=shopstream-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", "-new", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost",
             cwd=directory)
    (directory / "broker.ext").write_text(f"{_SAN}\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", str(days), "-extfile", "broker.ext", cwd=directory)
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
             "-name", "broker", "-out", "broker.p12", "-passout", "env:SHOPSTREAM_TEST_P12_PASS", cwd=directory,
             env={"SHOPSTREAM_TEST_P12_PASS": password})
    for leftover in ("ca.key", "broker.csr", "broker.ext"):
        (directory / leftover).unlink(missing_ok=True)
    logger.debug("made test PKI in %s", directory)
    return GeneratedPki(directory / "ca.pem", directory / "broker.pem", directory / "broker.p12", password)
