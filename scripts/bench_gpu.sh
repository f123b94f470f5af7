#!/usr/bin/env bash
# GPU benchmark: model limit (CUDA, TensorRT if present; fp32 and fp16; IO binding) and one
# end-to-end service run on the accelerator with the fp16 model, in a few minutes.
#
#   scripts/bench_gpu.sh [service ...]        # default: every service with a default model
#
# Without a GPU it runs the same code on the CPU provider (a smoke check); the report names
# the provider each figure ran on. Needs Java 17+ and the Kafka jars (cached by the harness)
# for the service run; without them only the model limits are measured.
# Env: PYTHON (default: python3), OUT (default: bench-gpu.md), EVENTS (default: 20000),
#      BOOTSTRAP (a running Kafka; default: start one with the test harness).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-bench-gpu.md}"
EVENTS="${EVENTS:-20000}"
broker=()
if [ -n "${BOOTSTRAP:-}" ]; then broker=(--bootstrap-servers "$BOOTSTRAP"); fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "no GPU visible (nvidia-smi missing or no device): CPU smoke run"
"$PYTHON" -c "import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.get_available_providers())"

# One broker for all services (no service named: every service with a default model).
if [ $# -eq 0 ]; then
  "$PYTHON" -m tools.cli.main bench gpu --events "$EVENTS" --repeats 1 --out "$OUT" "${broker[@]}"
else
  for svc in "$@"; do
    "$PYTHON" -m tools.cli.main bench gpu "$svc" --events "$EVENTS" --repeats 1 --out "${OUT%.md}-$svc.md" "${broker[@]}"
  done
fi
