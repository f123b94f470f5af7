#!/usr/bin/env bash
# Set up everything shopstream needs on a fresh Debian/Ubuntu machine, idempotently:
#   system packages (Java 17 + Maven for the embedded Kafka broker, Prometheus for the
#   observability tests), a Python virtual environment outside the clone keyed by the hash of
#   pyproject.toml (reused by later runs and CI), the project itself, and the Kafka jars.
#
# Usage: scripts/setup.sh runtime|all      (runtime: what the demo needs; all: + train + dev)
# Prints the venv path on its last line.
set -euo pipefail

profile="${1:-all}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/shopstream"
key="$(sha256sum "$repo/pyproject.toml" | cut -c1-16)"
venv="${SHOPSTREAM_VENV:-$cache/venvs/$key}"
python="${PYTHON:-python3}"

log() { echo "[setup] $*" >&2; }

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ "$profile" = "all" ]; then
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    log "missing system packages: ${need_apt[*]} (install them as root: apt-get install ${need_apt[*]})"
    exit 1
  fi
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  log "installing system packages: ${need_apt[*]}"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  # The Debian prometheus package starts a system service; the tests run their own.
  if [[ " ${need_apt[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo_cmd systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
fi

marker="$venv/.shopstream-$profile"
if [ ! -f "$marker" ]; then
  extras="";  [ "$profile" = "all" ] && extras="[train,dev]"
  log "installing Python dependencies ($profile)"
  "$venv/bin/pip" install -q "$repo$extras" >&2
  touch "$marker"
  [ "$profile" = "all" ] && touch "$venv/.shopstream-runtime"
fi
# The project itself, editable, so the venv always runs this clone's code (cheap, no deps).
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$repo" >&2 2>/dev/null \
  || "$venv/bin/pip" install -q --no-deps -e "$repo" >&2

if command -v java >/dev/null 2>&1; then
  log "resolving Apache Kafka jars (cached by pom hash)"
  "$venv/bin/python" -c "from tools.broker.kafka import ensure_kafka_jars; print(ensure_kafka_jars())" >&2
fi
echo "$venv"
