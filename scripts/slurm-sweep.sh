#!/usr/bin/env bash
# A gradscope sweep as a Slurm job array: each array task runs one shard (a deterministic slice
# of the grid) into its own folder; a job that depends on the array merges them.
#
#   jobid=$(sbatch --parsable --array=0-63 scripts/slurm-sweep.sh examples/phase-tanh-mnist.toml sweep-out)
#   sbatch --dependency=afterany:$jobid --wrap "gradscope merge sweep-out/shard-* --out sweep-out/merged"
#   gradscope phase sweep-out/merged --x sigma_w2 --y depth --metric test_accuracy
#
# Array indices must run from 0 to N-1 (--array=0-63 gives 64 shards: 0/64 … 63/64). A task
# that was killed (time limit, preemption) resumes where it stopped when it is run again
# (sbatch --array=17 …): finished runs are skipped. `merge` lists the grid points still missing.
#SBATCH --job-name=gradscope-sweep
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

config=${1:?usage: sbatch --array=0-N scripts/slurm-sweep.sh SWEEP.toml [OUT_DIR]}
out=${2:-sweep-out}
gradscope=${GRADSCOPE:-gradscope}  # the binary (a path if it is not on PATH)
k=${SLURM_ARRAY_TASK_ID:?not a Slurm array task: submit with sbatch --array=0-N}
n=${SLURM_ARRAY_TASK_COUNT:?not a Slurm array task: submit with sbatch --array=0-N}

# one run per allocated core, one thread inside each run (the measured best: docs/sweeps.md)
exec "$gradscope" sweep --config "$config" --shard "$k/$n" --out "$out/shard-$k" \
    --jobs "${SLURM_CPUS_PER_TASK:-1}" --threads 1 --quiet
