#!/bin/bash
# optimlab benchmark as a SLURM job array sharing one PostgreSQL store (docs/benchmark.md, "Scale-out").
# Enqueue the sweep once from a login node (any number of such commands enqueue each run once):
#   optimlab bench run --suite core --ruleset defaults --optimizers adamw,lion --seeds 3 \
#       --storage "$OPTIMLAB_BENCH_STORAGE" --enqueue-only
# then submit the workers:  sbatch --array=0-31 docs/bench/slurm-array.sh
# Each array task is one worker; tasks may start late, die or be preempted: a stale run is retried elsewhere.
#SBATCH --job-name=optimlab-bench
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=bench-%A_%a.log
set -euo pipefail
: "${OPTIMLAB_BENCH_STORAGE:?set it to postgresql://user:password@host:5432/db}"
export OMP_NUM_THREADS=1
srun optimlab bench worker --threads 1 --no-progress --storage "$OPTIMLAB_BENCH_STORAGE"
