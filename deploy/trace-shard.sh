#!/bin/sh
# One task of a sharded `execwm trace` run on a batch engine.
#
#   trace-shard.sh OUT_ROOT [execwm trace flags...]
#
# writes partition i of N to OUT_ROOT/part-i (i zero-padded to 5 digits), where i is the task's
# index, read from the first of these that is set:
#   JOB_COMPLETION_INDEX   Kubernetes Indexed Job
#   SLURM_ARRAY_TASK_ID    Slurm job array (--array=0-(N-1))
#   SHARD_INDEX            anything else
# and N is SHARD_COUNT (required; the Job's completions, the array's size).
#
# Every task of one run must get the same trace flags. The run is resumable: a task that is
# retried after a kill or eviction keeps the complete shards of its partition (--resume).
# When all N tasks have succeeded: execwm corpus merge OUT_ROOT/merged OUT_ROOT/part-*
#
# EXECWM is the command that runs execwm (default: execwm on the PATH).
set -eu

usage() {
  echo "trace-shard.sh: $1" >&2
  echo "usage: SHARD_COUNT=N trace-shard.sh OUT_ROOT [execwm trace flags...]" >&2
  exit 2
}

[ "$#" -ge 1 ] || usage "missing OUT_ROOT"
out_root=$1
shift
index=${JOB_COMPLETION_INDEX:-${SLURM_ARRAY_TASK_ID:-${SHARD_INDEX:-}}}
count=${SHARD_COUNT:-}
[ -n "$index" ] || usage "no task index: set JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or SHARD_INDEX"
[ -n "$count" ] || usage "SHARD_COUNT is not set"
case "$index$count" in
  *[!0-9]*) usage "task index and SHARD_COUNT must be whole numbers, got $index and $count" ;;
esac
[ "$index" -lt "$count" ] || usage "task index $index is not below SHARD_COUNT $count"

part=$(printf '%s/part-%05d' "$out_root" "$index")
echo "trace-shard.sh: partition $index/$count -> $part" >&2
# EXECWM may be a command with arguments (node /path/to/bin/execwm.js), so it is split on spaces.
# shellcheck disable=SC2086
exec ${EXECWM:-execwm} trace "$@" --shard "$index/$count" --out "$part" --resume
