"""Secrets stay secret: not in ``--help``, reprs, dumps or error messages; read from a secrets dir.

Also the HTTP surface: metrics and health bind to the configured address and nothing else
(no debug or config endpoint) is served.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic_settings import SettingsError

from shared.errors import ConfigError
from shared.runtime.health import HealthServer, HealthState
from tools.cli.serve import load_settings
from tools.supervisor import REPO_ROOT, http_get

SECRET = "s3cr3t-Pa55word-that-must-never-show"
PREFIX = "SHOPSTREAM_ECHO_"


@pytest.fixture
def sasl_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(f"{PREFIX}KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv(f"{PREFIX}KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv(f"{PREFIX}KAFKA__SASL_USERNAME", "echo-svc")
    yield


def assert_absent(text: str) -> None:
    assert SECRET not in text
    assert SECRET[:6] not in text, "even a prefix of the secret is a leak"


def test_help_output_never_contains_a_secret_from_the_environment() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), f"{PREFIX}KAFKA__SASL_PASSWORD": SECRET}
    for args in (["--help"], ["serve", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "tools.cli.main", *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "serve" in proc.stdout
        assert_absent(proc.stdout + proc.stderr)


def test_settings_repr_str_and_dumps_mask_the_password(sasl_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}KAFKA__SASL_PASSWORD", SECRET)
    settings = load_settings("echo")
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert_absent(text)
    # librdkafka needs the real value, and only gets it here
    assert settings.kafka.client_config("echo")["sasl.password"] == SECRET


@pytest.mark.parametrize("broken", [
    {f"{PREFIX}KAFKA__SASL_USERNAME": ""},  # the SASL validator fails on the whole kafka section
    {f"{PREFIX}KAFKA__SASL_MECHANISM": "ROT13"},  # a field error next to the secret
    {f"{PREFIX}KAFKA__EXTRA": "{not json"},
])
def test_invalid_settings_errors_never_quote_the_password(
    sasl_env: None, monkeypatch: pytest.MonkeyPatch, broken: dict[str, str]
) -> None:
    monkeypatch.setenv(f"{PREFIX}KAFKA__SASL_PASSWORD", SECRET)
    for name, value in broken.items():
        monkeypatch.setenv(name, value)
    # a malformed KAFKA__EXTRA fails in the env source (SettingsError) before validation runs
    with pytest.raises((ConfigError, SettingsError)) as info:
        load_settings("echo")
    error: BaseException | None = info.value
    while error is not None:  # the whole chain a traceback would print
        assert_absent(f"{error!s} {error!r}")
        error = error.__cause__ or error.__context__


def test_the_password_is_read_from_a_secrets_dir_and_the_environment_wins(
    sasl_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / f"{PREFIX}KAFKA__SASL_PASSWORD").write_text(SECRET + "\n")
    settings = load_settings("echo", secrets_dir=tmp_path)
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == SECRET  # trailing newline of the file dropped
    assert settings.kafka.sasl_username == "echo-svc"  # other kafka settings still come from the env
    monkeypatch.setenv(f"{PREFIX}KAFKA__SASL_PASSWORD", "from-env")
    overridden = load_settings("echo", secrets_dir=tmp_path).kafka.sasl_password
    assert overridden is not None and overridden.get_secret_value() == "from-env"


def test_a_missing_secret_fails_with_a_config_error_not_a_traceback(sasl_env: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sasl_password"):
        load_settings("echo", secrets_dir=tmp_path)


def test_health_binds_to_the_configured_address_and_serves_no_debug_endpoint() -> None:
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), HealthState(model_loaded=True, joined=True))
    server.start()
    try:
        assert server._server is not None and server._server.server_address[0] == "127.0.0.1"
        assert http_get(server.port, "/readyz")[0] == 200
        for path in ("/debug", "/debug/pprof", "/config", "/env", "/settings", "/admin", "/../etc/passwd"):
            assert http_get(server.port, path)[0] == 404, path
    finally:
        server.stop()


def test_the_default_metrics_address_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}METRICS__HOST", "127.0.0.1")
    monkeypatch.setenv(f"{PREFIX}METRICS__PORT", "9555")
    settings = load_settings("echo")
    assert (settings.metrics.host, settings.metrics.port) == ("127.0.0.1", 9555)
