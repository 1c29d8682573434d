#!/usr/bin/env bash
# A Slurm job array: 8 tasks, task K evaluates shard K/8 of the split (--shard by a hash of each
# image id: every task agrees on the split with no coordinator), then one dependent job merges the
# eight confusion matrices into the numbers of a single full `fcn eval`.
#   sbatch docs/deploy/slurm-array.sh                 # submits the array and the merge
# Needs fcn on the nodes (a checkout after `npm ci`, or the container image through apptainer:
#   FCN="apptainer exec docker://fcn:0.1.0 node /app/bin/fcn.js").
#SBATCH --job-name=fcn-eval
#SBATCH --array=1-8
#SBATCH --cpus-per-task=2
#SBATCH --mem=3G
#SBATCH --time=02:00:00
#SBATCH --output=fcn-eval-%A_%a.log
set -euo pipefail
FCN=${FCN:-npx fcn}
MODEL=${MODEL:-$HOME/models/model.safetensors}
DATA=${DATA:-$HOME/data/VOCdevkit/VOC2012}
OUT=${OUT:-$HOME/results/$SLURM_ARRAY_JOB_ID}
mkdir -p "$OUT"

$FCN eval --model "$MODEL" --data "$DATA" --split val \
  --threads "$SLURM_CPUS_PER_TASK" \
  --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" \
  --json "$OUT/eval-$SLURM_ARRAY_TASK_ID.json"

# the last task to start submits the merge, to run once every task has succeeded
if [ "$SLURM_ARRAY_TASK_ID" = "$SLURM_ARRAY_TASK_MAX" ]; then
  sbatch --dependency="afterok:$SLURM_ARRAY_JOB_ID" --job-name=fcn-eval-merge --output="$OUT/merge.log" \
    --wrap "$FCN eval --merge $OUT/eval-*.json --json $OUT/eval.json"
fi
# Masks instead of numbers (each task writes its own 1/8 of the files into one folder):
#   $FCN predict --model "$MODEL" --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" --out "$OUT/masks" "$DATA"/JPEGImages/*.jpg
