#!/usr/bin/env bash
# GPU benchmark, unattended: model limits on CUDA (and TensorRT when its libraries load) beside the
# same sweep on this host's CPU, the provider every node ran on, and the GPU / driver / CUDA /
# onnxruntime versions, in one markdown report, within a total time budget (default 7 min).
#
#   scripts/bench_gpu.sh [service ...]     # default: every service with a default model
#   QUICK=1 scripts/bench_gpu.sh           # smoke mode: fraud, batches 1/16/256, one repeat (~15 s on a CPU)
#
# Modes: MODE=model measures the model limits only (no broker, no Java); MODE=full also runs each
# service end to end through Kafka on the GPU (needs Java 17+ and the Kafka jars, or BOOTSTRAP);
# MODE=auto (the default) is full when `java` is on the PATH, else model.
# Each step runs in its own process under `timeout` (a hung CUDA call cannot eat the budget) and
# writes what it finished as it goes; the report lists every step's status, and a step that timed
# out still reports the sweeps it completed.
# CUDA libraries: the lib folders of the nvidia-* Python packages (cu13, cudnn, ...) found on the
# interpreter's sys.path go first on LD_LIBRARY_PATH before Python starts, and every step calls
# onnxruntime.preload_dlls() (when the installed onnxruntime has it) before its first session.
# Env: PYTHON (python3), REPORT (bench-gpu.md), WORK (a new temp folder: JSON parts and logs),
#      BUDGET_S (420; QUICK: 120), SERVICE_S (most seconds one service's step may take: 150),
#      TENSORRT (auto | off), TRT_CACHE (engine cache; default ~/.cache/shopstream/trt-engines),
#      EVENTS (20000, full mode), BOOTSTRAP (a running Kafka for full mode).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
QUICK="${QUICK:-0}"
REPORT="${REPORT:-bench-gpu.md}"
MODE="${MODE:-auto}"
TENSORRT="${TENSORRT:-auto}"
TRT_CACHE="${TRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shopstream/trt-engines}"
EVENTS="${EVENTS:-20000}"
if [ "$QUICK" = 1 ]; then BUDGET_S="${BUDGET_S:-120}"; else BUDGET_S="${BUDGET_S:-420}"; fi
SERVICE_S="${SERVICE_S:-150}"
REPORT_S=30   # kept back for the report step
WORK="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/shopstream-bench-gpu.XXXXXX")}"
mkdir -p "$WORK"
: >"$WORK/steps.tsv"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
deadline=$((SECONDS + BUDGET_S))

if [ "$MODE" = auto ]; then
  if command -v java >/dev/null 2>&1 || [ -n "${BOOTSTRAP:-}" ]; then MODE=full; else MODE=model; fi
fi
[ "$QUICK" = 1 ] && MODE=model

# step NAME WANT_S COMMAND...: runs COMMAND under `timeout` for at most WANT_S seconds and what
# is left of the budget (less REPORT_S); records name, status, seconds, limit and a note.
step() {
  local name=$1 want=$2
  shift 2
  local left=$((deadline - SECONDS - REPORT_S))
  local limit=$((want < left ? want : left))
  if [ "$limit" -lt 5 ]; then
    printf '%s\tskipped\t0\t%s\tthe time budget (BUDGET_S=%s) is spent\n' "$name" "$limit" "$BUDGET_S" >>"$WORK/steps.tsv"
    echo "== $name: skipped, out of budget" >&2
    return 1
  fi
  echo "== $name (at most ${limit}s)" >&2
  local t0=$SECONDS rc status
  timeout -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timed out" ;;
    *) status="failed (exit $rc)" ;;
  esac
  local note
  note=$(grep -v '^\s*$' "$WORK/$name.log" | tail -n 1 | tr '\t|' '  ' | cut -c1-200)
  printf '%s\t%s\t%d\t%d\t%s\n' "$name" "$status" $((SECONDS - t0)) "$limit" "$note" >>"$WORK/steps.tsv"
  echo "   $status in $((SECONDS - t0))s" >&2
  return "$rc"
}

# CUDA from the nvidia-* Python packages, before any Python that loads onnxruntime starts.
libdirs=$(timeout 60 "$PYTHON" -m tools.bench.gpu libdirs 2>"$WORK/libdirs.log") || libdirs=""
if [ -n "$libdirs" ]; then export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi

step env 60 "$PYTHON" -m tools.bench.gpu env --json "$WORK/env.json"
sed 's/^/   /' "$WORK/env.log" >&2

if [ $# -gt 0 ]; then
  services=("$@")
elif [ "$QUICK" = 1 ]; then
  services=(fraud)
else
  read -r -a services <<<"$(timeout 120 "$PYTHON" -m tools.bench.gpu services 2>>"$WORK/libdirs.log")"
fi
if [ ${#services[@]} -eq 0 ]; then
  echo "no services to measure (see $WORK/libdirs.log)" >&2
fi

quick=()
[ "$QUICK" = 1 ] && quick=(--quick)
parts=()
n=${#services[@]}
for i in "${!services[@]}"; do
  svc=${services[$i]}
  # A fair share of what is left: the services after this one keep theirs.
  left=$((deadline - SECONDS - REPORT_S))
  share=$((left / (n - i)))
  want=$((share < SERVICE_S ? share : SERVICE_S))
  parts+=("$WORK/limits-$svc.json")
  # The sweeps plan to end 10 s before the step's timeout; the timeout is the backstop.
  step "limits-$svc" "$want" "$PYTHON" -m tools.bench.gpu limits "$svc" --json "$WORK/limits-$svc.json" \
    --deadline-s $((want > 20 ? want - 10 : want / 2)) --tensorrt "$TENSORRT" --trt-cache "$TRT_CACHE" "${quick[@]}"
done

service_md=()
if [ "$MODE" = full ] && [ ${#services[@]} -gt 0 ]; then
  broker=()
  [ -n "${BOOTSTRAP:-}" ] && broker=(--bootstrap-servers "$BOOTSTRAP")
  step service 600 "$PYTHON" -m tools.bench.gpu service "${services[@]}" --out "$WORK/service.md" \
    --events "$EVENTS" "${broker[@]}"
  service_md=(--service-md "$WORK/service.md")
elif [ "$MODE" = model ]; then
  printf 'service\tskipped\t0\t0\tmodel-limit-only mode (MODE=model%s)\n' \
    "$(command -v java >/dev/null 2>&1 || echo ', no java on the PATH')" >>"$WORK/steps.tsv"
fi

title="GPU benchmark: model limits$([ "$MODE" = full ] && echo ' and service runs')$([ "$QUICK" = 1 ] && echo ' (QUICK smoke run)')"
if ! timeout "$REPORT_S" "$PYTHON" -m tools.bench.gpu report "${parts[@]}" --env "$WORK/env.json" --steps "$WORK/steps.tsv" \
  --out "$REPORT" --title "$title" --tensorrt "$TENSORRT" --trt-cache "$TRT_CACHE" "${service_md[@]}" \
  >"$WORK/report.log" 2>&1; then
  # The report step itself failed: still leave the raw results behind.
  { echo "# $title (raw: the report step failed)"; echo; cat "$WORK/report.log"; echo; cat "$WORK/steps.tsv"
    for f in "$WORK"/*.log; do echo; echo "## $f"; tail -n 20 "$f"; done; } >"$REPORT"
  cat "$REPORT"
  echo "report step failed; raw results in $REPORT, parts and logs in $WORK" >&2
  exit 1
fi
cat "$REPORT"
echo "report: $REPORT; parts and logs: $WORK; $SECONDS s in all (budget $BUDGET_S s)" >&2
# Non-zero when any step did not finish cleanly (the report still lists what did).
if grep -q -E $'\t(timed out|failed)' "$WORK/steps.tsv"; then exit 2; fi
exit 0
