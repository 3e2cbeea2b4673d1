#!/usr/bin/env bash
# NFM pairs for a whole data set, precomputed past one machine: a Slurm job array, one shard per task.
#   sbatch examples/cluster/couple-slurm.sh            # 8 shards (tasks 0..7), into pairs/
#   nfm student train --data mnist:data/mnist --coupling teacher:pairs --out student.ckpt
# Every task encodes its own whole blocks of rows with its own seeded noise, so the shards together equal one run
# exactly; training on the folder checks that they cover every row once, with one teacher and one data identity, and
# names a missing or duplicate shard otherwise. A task that is preempted resumes from its .partial file when requeued.
# Needs the nfm tool on each node (README, "Installing": dotnet tool install --tool-path ... Nfm.Cli) and a shared
# file system for the teacher checkpoint, the data and pairs/. Every setting below can be overridden from the
# environment (sbatch --export=ALL,DATA=...,TEACHER=...).
#SBATCH --job-name=nfm-couple
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=nfm-couple-%A_%a.log
set -euo pipefail
NFM=${NFM:-nfm}                                   # the nfm command (e.g. "dotnet /opt/nfm/nfm.dll")
TEACHER=${TEACHER:-teacher.ckpt}                  # a trained teacher (nfm teacher train)
DATA=${DATA:-mnist:data/mnist}                    # the data the student will train on
PAIRS=${PAIRS:-pairs}                             # the folder of shards (give it to the student as teacher:PAIRS)
ETA=${ETA:-0.05}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}                                  # more couple options, e.g. "--draws 4" or "--n 600" (2-D sets)
I=${SLURM_ARRAY_TASK_ID:?submit with sbatch (an array job), or set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT}
N=${SLURM_ARRAY_TASK_COUNT:?submit with sbatch (an array job), or set SLURM_ARRAY_TASK_COUNT}
mkdir -p "$PAIRS"
$NFM --threads "${SLURM_CPUS_PER_TASK:-4}" couple --teacher "$TEACHER" --data "$DATA" --eta "$ETA" --seed "$SEED" \
  --shard "$I/$N" --out "$PAIRS/shard-$I-of-$N.pairs" $EXTRA
