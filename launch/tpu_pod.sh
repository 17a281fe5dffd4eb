#!/usr/bin/env bash
# Install tinynet_jax on every worker of a TPU VM pod and run one training (all hosts, jax.distributed) or
# one sweep shard per host.
set -euo pipefail

usage() {
  cat <<'TXT'
Usage: launch/tpu_pod.sh --tpu NAME --zone ZONE [--project ID] [--hosts N] [--repo URL] [--ref REF]
                         [--skip-install] [--dry-run] (train|sweep) -- MAIN_ARGS...

  train   every host runs one process of a pod-wide data-parallel run (TINYNET_DISTRIBUTED=1:
          jax.distributed finds the pod by itself); MAIN_ARGS as for python -m tinynet_jax.main
  sweep   every host trains its own shard of a sweep, --config.shard=<worker>/<hosts> (needs --hosts)

  --repo/--ref  where the workers get the code (default: this checkout's origin and HEAD)
  --dry-run     print the gcloud commands instead of running them

Example:
  launch/tpu_pod.sh --tpu my-v4-32 --zone us-central2-b --hosts 4 sweep -- \
      --config=configs/sweep.py --workdir=gs://my-bucket/in100 --config.train.data_dir=gs://my-bucket/tfds
TXT
}

tpu="" zone="" project="" hosts="" dry_run=0 install=1 mode=""
repo="$(git -C "$(dirname "$0")/.." remote get-url origin 2>/dev/null || true)"
ref="$(git -C "$(dirname "$0")/.." rev-parse HEAD 2>/dev/null || echo main)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --tpu) tpu="$2"; shift 2 ;;
    --zone) zone="$2"; shift 2 ;;
    --project) project="$2"; shift 2 ;;
    --hosts) hosts="$2"; shift 2 ;;
    --repo) repo="$2"; shift 2 ;;
    --ref) ref="$2"; shift 2 ;;
    --skip-install) install=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    train|sweep) mode="$1"; shift ;;
    --) shift; break ;;
    *) echo "tpu_pod.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
main_args=("$@")
[[ -n "$tpu" && -n "$zone" ]] || { echo "tpu_pod.sh: error: --tpu and --zone are required" >&2; exit 2; }
[[ -n "$mode" ]] || { echo "tpu_pod.sh: error: say train or sweep" >&2; exit 2; }
[[ -n "$repo" ]] || { echo "tpu_pod.sh: error: this checkout has no remote 'origin'; pass --repo URL" >&2; exit 2; }
[[ ${#main_args[@]} -gt 0 ]] || { echo "tpu_pod.sh: error: give the main arguments after --" >&2; exit 2; }
if [[ "$mode" == sweep && ! "$hosts" =~ ^[1-9][0-9]*$ ]]; then
  echo "tpu_pod.sh: error: sweep needs --hosts N (the pod's number of TPU VM hosts)" >&2; exit 2
fi

ssh=(gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all)
[[ -n "$project" ]] && ssh+=(--project "$project")

quote() {  # one shell word, single-quoted when it needs quoting
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

run() {  # prints the command; runs it unless --dry-run
  local word line=""
  for word in "$@"; do line+="$(quote "$word") "; done
  printf '%s\n' "${line% }"
  [[ "$dry_run" == 1 ]] || "$@"
}

install_cmd="set -e; [ -d tinynet_jax ] || git clone $(printf '%q' "$repo") tinynet_jax; cd tinynet_jax"
install_cmd+=" && git fetch -q origin && git checkout -q $(printf '%q' "$ref")"
install_cmd+=" && pip install -q -e '.[data]' 'jax[tpu]'"
quoted_args=""
for word in "${main_args[@]}"; do quoted_args+="$(quote "$word") "; done
if [[ "$mode" == train ]]; then
  job="cd tinynet_jax && TINYNET_DISTRIBUTED=1 python -m tinynet_jax.main $quoted_args"
else
  # Expanded on each worker, not here: the TPU VM's own index from the metadata server.
  # shellcheck disable=SC2016
  worker='$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number)'
  job="cd tinynet_jax && python -m tinynet_jax.main $quoted_args--config.shard=${worker}/${hosts}"
fi

[[ "$install" == 1 ]] && run "${ssh[@]}" --command "$install_cmd"
run "${ssh[@]}" --command "$job"
