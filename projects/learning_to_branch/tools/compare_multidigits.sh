#!/usr/bin/env bash
# The README's MultiDigits comparison for one seed, with the independent
# trainings in parallel processes (one thread each):
#   bash projects/learning_to_branch/tools/compare_multidigits.sh SEED [BUDGET]
# 1. the search (--budget, default 60%) -> work_dirs/ltb/seed_S/
# 2. at the same time: the five single-task models (one process each) and,
#    once the tree is written, the tree itself (--deferred-train: a
#    checkpoint at every probe evaluation, selected in step 3)
# 3. the single-task models gathered into one work dir; the main job's
#    selection rule applied to the tree; test; Δm, parameters, FLOPs
#    -> work_dirs/ltb/retrain_seed_S/result.md
set -e
SEED=${1:?give a seed}
BUDGET=${2:-60%}
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
RUN="nice -n 19 env OMP_NUM_THREADS=1 $PY"
CFG=projects/learning_to_branch/configs/ltb_resnet18-thin_multidigits.py
TOOLS=projects/learning_to_branch/tools
W=work_dirs/ltb
OUT=$W/retrain_seed_$SEED
TASKS="left right left_parity right_parity sum"
mkdir -p $W
$RUN $TOOLS/search.py $CFG --work-dir $W/seed_$SEED --budget "$BUDGET" \
    --seed $SEED > $W/search_seed_$SEED.log 2>&1 &
search=$!
pids=()
for t in $TASKS; do
  $RUN $TOOLS/retrain.py --config $CFG --work-dir $W/st_${SEED}_$t \
      --seed $SEED --tasks $t > $W/st_${SEED}_$t.log 2>&1 &
  pids+=($!)
done
wait $search
$RUN $TOOLS/retrain.py $W/seed_$SEED --work-dir $W/def_${SEED}_ltb \
    --seed $SEED --deferred-train ltb > $W/def_${SEED}_ltb.log 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait $p; done
mkdir -p $OUT/single_task $OUT/stages
for t in $TASKS; do
  cp -r $W/st_${SEED}_$t/single_task/$t $OUT/single_task/
  cp $W/st_${SEED}_$t/stages/single_task__$t.json $OUT/stages/
done
$RUN $TOOLS/retrain.py $W/seed_$SEED --work-dir $OUT --seed $SEED \
    --deferred ltb=$W/def_${SEED}_ltb/ltb
