#!/usr/bin/env bash
# One process of a multi-host GPU run: coordinator address, process count and process id from flags or SLURM.
set -euo pipefail

usage() {
  cat <<'TXT'
Usage: launch/gpu_multinode.sh [--coordinator HOST:PORT] [--num-processes N] [--process-id I] [--port P]
                               [--dry-run] -- MAIN_ARGS...

Runs python -m tinynet_jax.main MAIN_ARGS as process I of N (jax.distributed). Unset values come from SLURM:
the coordinator is the first host of $SLURM_JOB_NODELIST (port --port, default 12355), N = $SLURM_NTASKS,
I = $SLURM_PROCID. Under SLURM: srun --ntasks-per-node=1 launch/gpu_multinode.sh -- --config=... --workdir=...
Elsewhere run it on every host with explicit --coordinator/--num-processes/--process-id.
--dry-run prints the command instead of running it.
TXT
}

coordinator="" num_processes="" process_id="" port=12355 dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --coordinator) coordinator="$2"; shift 2 ;;
    --num-processes) num_processes="$2"; shift 2 ;;
    --process-id) process_id="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    *) echo "gpu_multinode.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
main_args=("$@")
[[ ${#main_args[@]} -gt 0 ]] || { echo "gpu_multinode.sh: error: give the main arguments after --" >&2; exit 2; }

if [[ -z "$coordinator" && -n "${SLURM_JOB_NODELIST:-}" ]]; then
  coordinator="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):${port}"
fi
num_processes="${num_processes:-${SLURM_NTASKS:-}}"
process_id="${process_id:-${SLURM_PROCID:-}}"
if [[ -z "$coordinator" || -z "$num_processes" || -z "$process_id" ]]; then
  echo "gpu_multinode.sh: error: need --coordinator, --num-processes and --process-id (or run under SLURM)" >&2
  exit 2
fi

cmd=(python -m tinynet_jax.main "${main_args[@]}" "--coordinator_address=${coordinator}"
     "--num_processes=${num_processes}" "--process_id=${process_id}")
printf '%q ' "${cmd[@]}"; printf '\n'
[[ "$dry_run" == 1 ]] || exec "${cmd[@]}"
