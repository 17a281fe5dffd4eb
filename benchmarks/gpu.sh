#!/usr/bin/env bash
# Issue 14's device run in one call: our steps vs timm (eager and torch.compile) at batch 256 in bf16, the
# device-resident-data step, compile time cold and with the persistent cache warm, two sweep models at once vs
# one after the other, then the acceptance table and the sweep's price (benchmarks/summarize.py).
set -uo pipefail  # not -e: a failed or skipped phase is logged and the next one still runs

usage() {
  cat <<'EOF'
Usage: bash benchmarks/gpu.sh [--smoke] [--phases core,warm,sweep,zoo] [--budget SECONDS] [--compile-all]

Writes under $OUT (a new temp dir when OUT is unset): log.txt, env.txt, bench.json (every cold benchmark
process's JSON, verbatim), bench_warm.json, sweep.json, summary.md, summary.json. Scratch (the compilation
cache, training workdirs, installed wheels) goes to a temp dir that is removed at exit.

Phases, in order; each runs only if the time left of --budget (default 450 s; 3600 with --smoke) allows:
  core   tinynet_a, tinynet_e (train, eval, train_resident; timm eager), then tinynet_a vs torch.compile
  warm   the core programs again in a new process, compilation cache warm: compile seconds vs cold
  sweep  benchmarks/concurrent_sweep.py: two sweep models at once vs one after the other
  zoo    every other zoo model, one process each (train, eval; timm eager; --compile-all adds torch.compile)

Wheels in .whl/ (benchmarks/fetch_wheels.sh) are installed first: the device image lacks clu and ml_collections.
--smoke: CPU, 32 px, batch 8, 2 steps, one small model per phase: checks the plumbing, measures nothing.
EOF
}

SMOKE=0
PHASES=core,warm,sweep,zoo
BUDGET=
COMPILE_ALL=0
while (($#)); do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --phases) PHASES=${2:?--phases needs a comma list}; shift ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
    --compile-all) COMPILE_ALL=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! $BUDGET =~ ^[0-9]*$ ]]; then
  echo "gpu.sh: --budget must be whole seconds, got '$BUDGET'" >&2
  exit 2
fi
for phase in ${PHASES//,/ }; do
  case "$phase" in core|warm|sweep|zoo) ;; *) echo "gpu.sh: unknown phase '$phase'" >&2; exit 2 ;; esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/tinynet_gpu_out.XXXXXX")}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tinynet_gpu_work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if ((SMOKE)); then
  BUDGET=${BUDGET:-3600}  # no limit to speak of: the caller's timeout governs (minutes on a busy 2-core CPU)
  export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
  BENCH=(--batch 8 --dtype auto --resolution 32 --steps 2 --warmup 1)
  CORE=(efficientnet_b-4)
  ZOO_REST=(tinynet_e)
  ZOO_MODES="eval"
  SWEEP=(--smoke --cache-dir "$WORK/sweep_cache")
  TIMM_COMPILE=eager  # torch.compile's C++/Triton build takes minutes on a CPU: the phase runs eager instead
  NEED_CORE=0 NEED_ZOO=0 NEED_SWEEP=0 RESERVE=0
else
  BUDGET=${BUDGET:-450}
  BENCH=(--batch 256 --dtype bfloat16 --steps 50 --warmup 5)
  CORE=(tinynet_a tinynet_e)
  # The rest by how much they add to the sweep's price: sizes between tinynet_e and tinynet_a first.
  ZOO_REST=(tinynet_c tinynet_b tinynet_d efficientnet_b-2 efficientnet_b-1 efficientnet_b-3 efficientnet_b0
            efficientnet_b-4)
  ZOO_MODES=train,eval
  SWEEP=()
  TIMM_COMPILE=compile
  # Seconds a phase must have left to be worth starting; RESERVE is kept for the summary.
  NEED_CORE=90 NEED_ZOO=45 NEED_SWEEP=100 RESERVE=25
fi

# One persistent cache for every JAX process: the cold runs fill it, the warm run reads it. Everything is
# cached (no minimum compile time or size), with XLA's per-fusion autotune results beside it (jax's default).
export JAX_COMPILATION_CACHE_DIR=$WORK/xla_cache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1
export TORCHINDUCTOR_CACHE_DIR=$WORK/inductor_cache  # torch.compile cold too
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3 PIP_ROOT_USER_ACTION=ignore

SKIPPED=()
FAILED=()

# run_phase NAME NEED COMMAND...: runs COMMAND under the time left (minus RESERVE) if at least NEED seconds are.
run_phase() {
  local name=$1 need=$2 left start rc
  shift 2
  left=$((BUDGET - SECONDS - RESERVE))
  if ((left < need || left <= 0)); then
    echo "[gpu.sh] skip $name: ${left}s left, needs ${need}s"
    SKIPPED+=("$name")
    return 0
  fi
  echo "[gpu.sh] $(date +%T) +${SECONDS}s $name (limit ${left}s): $*"
  start=$SECONDS
  timeout -k 10 "$left" "$@"
  rc=$?
  echo "[gpu.sh] $name: exit $rc after $((SECONDS - start))s"
  ((rc == 0)) || FAILED+=("$name")
}

wanted() { [[ ",$PHASES," == *",$1,"* ]]; }

# bench TAG MODEL MODES TIMM_MODES: sets CMD to one benchmark process for one model, JSON to $WORK/bench/TAG.json.
bench() {
  CMD=("$PY" -m tinynet_jax.benchmark --models "$2" --modes "$3" "${BENCH[@]}" --json "$WORK/bench/$1.json")
  if ((HAVE_TIMM)); then
    CMD+=(--compare timm --timm-modes "$4")
  fi
}

main() {
  echo "[gpu.sh] $(date -u +%FT%TZ) smoke=$SMOKE phases=$PHASES budget=${BUDGET}s out=$OUT"
  mkdir -p "$WORK/bench"
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
      .whl/*.whl || { echo "[gpu.sh] installing .whl/ failed" >&2; return 1; }
    export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}

  {
    nvidia-smi 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c 'import sys, jax; print(sys.version); print("jax", jax.__version__, jax.devices())'
    "$PY" -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)' \
      || echo "torch/timm not importable: no timm rows"
    "$PY" -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|flax|optax|orbax|clu|ml.collections|torch|timm|numpy) '
  } >"$OUT/env.txt" 2>&1
  cat "$OUT/env.txt"
  HAVE_TIMM=0
  if "$PY" -c 'import torch, timm' 2>/dev/null; then
    HAVE_TIMM=1
  fi
  if ((!SMOKE)) && [[ $("$PY" -c 'import jax; print(jax.default_backend())' 2>/dev/null) != gpu ]]; then
    echo "[gpu.sh] JAX sees no GPU here; use --smoke on a CPU" >&2
    return 3
  fi

  local timm_rest=eager model
  if ((COMPILE_ALL)); then
    timm_rest=eager,compile
  fi
  if wanted core; then
    for model in "${CORE[@]}"; do
      bench "core_$model" "$model" train,eval,train_resident eager
      run_phase "core $model" "$NEED_CORE" "${CMD[@]}"
    done
    # torch.compile for tinynet_a (the acceptance needs it) in a process of its own, after the eager rows are
    # safe: a slow or failing inductor costs only this. Our rows here come from the cache the run above filled;
    # summarize.py reads this file first, so the cold rows above are the ones it keeps.
    bench "0compile_${CORE[0]}" "${CORE[0]}" train,eval "$TIMM_COMPILE"
    run_phase "core ${CORE[0]} torch.compile" "$NEED_CORE" "${CMD[@]}"
  fi
  if wanted warm; then
    local models
    models=$(IFS=,; echo "${CORE[*]}")
    run_phase warm 0 "$PY" -m tinynet_jax.benchmark --models "$models" --modes train,eval,train_resident \
      "${BENCH[@]}" --steps 2 --warmup 1 --json "$OUT/bench_warm.json"
  fi
  if wanted sweep; then
    run_phase sweep "$NEED_SWEEP" "$PY" benchmarks/concurrent_sweep.py --json "$OUT/sweep.json" \
      --workdir "$WORK/sweep" "${SWEEP[@]}"
  fi
  if wanted zoo; then
    for model in "${ZOO_REST[@]}"; do
      bench "zoo_$model" "$model" "$ZOO_MODES" "$timm_rest"
      run_phase "zoo $model" "$NEED_ZOO" "${CMD[@]}"
    done
  fi

  local summary=(--merged "$OUT/bench.json" --markdown "$OUT/summary.md" --json "$OUT/summary.json")
  if compgen -G "$WORK/bench/*.json" >/dev/null; then
    summary+=(--bench "$WORK"/bench/*.json)
  fi
  if [[ -f $OUT/bench_warm.json ]]; then
    summary+=(--warm "$OUT/bench_warm.json")
  fi
  if [[ -f $OUT/sweep.json ]]; then
    summary+=(--sweep "$OUT/sweep.json")
  fi
  echo "[gpu.sh] $(date +%T) +${SECONDS}s summary"
  timeout -k 10 180 "$PY" benchmarks/summarize.py "${summary[@]}" || FAILED+=(summary)
  if ((${#SKIPPED[@]})); then
    echo "[gpu.sh] skipped (out of budget): ${SKIPPED[*]}"
  fi
  if ((${#FAILED[@]})); then
    echo "[gpu.sh] failed: ${FAILED[*]}"
    return 1
  fi
  echo "[gpu.sh] done in ${SECONDS}s: $OUT"
}

main 2>&1 | tee "$OUT/log.txt"
