#!/usr/bin/env bash
# The GPU check, made to travel: on a GPU machine with torch and transformers but none of our
# other packages, the packaged MiniLM or the GLUE folder, it takes them from .gpucarry/ (built
# here by bench/gpu_carry.sh) and runs, each step under its own timeout, a failing step not
# stopping the later ones:
#   equality   the forward's equality tests on CUDA (mixed batch == rows alone, CUDA == CPU,
#              bf16/fp16 within the stated bound, captured graphs == eager and see slot writes)
#   minilm     bench.forward.fused_forward at 1/100/1,000 resident APL tasks, batch 32 and
#   bertbase   128, float32 and bfloat16, graphs off and on (MiniLM; BERT-base dimensions
#              with random weights): paired x ceiling, top-level ops, seq/s
#   train      bench.training.train_step --device cuda: APL against full fine-tuning
#   tiers      bench.forward.tier_copy: host-tier copy into a slot and a store load, p50/p99
# Files (flat, 7) go to $OUT (default bench/results/gpu): summary.txt (one line per step),
# log.txt, equality.txt and one JSON per benchmark. Planned at under 7 minutes on one H200.
# `--dry-run` runs every step on the CPU at tiny sizes (under two minutes). GPUCHECK_STEPS
# (e.g. "minilm tiers") runs only the steps named, for a rerun.
# Run from the repository root: bash bench/gpu_check.sh [--dry-run]
set -uo pipefail
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python3}
CARRY=${CARRY_DIR:-.gpucarry}
WHEELS=${GPUCHECK_WHEELS:-$CARRY/wheels}
SITE=${GPUCHECK_SITE:-/tmp/site}
mkdir -p "$OUT"
: >"$OUT/summary.txt"
: >"$OUT/log.txt"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl 2>&1 | tee -a "$OUT/log.txt" || { echo "wheels did not install" | tee -a "$OUT/summary.txt"; exit 1; }
  export PYTHONPATH="$PWD:$SITE"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export UNIPELT_GLUE_DIR="$CARRY/glue"
MINILM="$CARRY/minilm-fp16"
BERT="$CARRY/bert-base"
if [ $DRY = 1 ]; then
  DEV=cpu
  FWD=(--tasks 2 --batch 4 --dtype bfloat16 --graphs off on --windows 1 --threads 2)
  FWD_BERT=(--tasks 1 --batch 2 --dtype float32 --graphs off --windows 1 --threads 2)
  TRAIN=(--k 8 --steps 1 --rounds 1 --threads 2 --batch-size 2)
  TIERS=(--tasks 3 --passes 1 --slots 2)
  T_EQ=60 T_MINILM=60 T_BERT=60 T_TRAIN=60 T_TIERS=60
else
  DEV=cuda
  FWD=(--tasks 1 100 1000 --batch 32 128 --dtype float32 bfloat16 --graphs off on --windows 20
    --threads 4)
  FWD_BERT=("${FWD[@]:0:13}" --windows 12 --threads 4)
  TRAIN=(--k 200 --steps 24 --rounds 1 --threads 4)
  TIERS=(--tasks 64 --passes 4 --slots 8)
  T_EQ=75 T_MINILM=110 T_BERT=130 T_TRAIN=50 T_TIERS=35
fi
status=0
STEPS=${GPUCHECK_STEPS:-equality minilm bertbase train tiers}

# step NAME SECONDS SUMMARY_KIND JSON -- COMMAND...: runs COMMAND under `timeout`, output to
# log.txt, then one line to summary.txt (from the JSON when the step wrote one).
step() {
  local name=$1 limit=$2 kind=$3 json=$4
  shift 5
  [[ " $STEPS " == *" $name "* ]] || return 0
  local started=$SECONDS rc line
  echo "=== $name: $*" >>"$OUT/log.txt"
  timeout -k 5 "$limit" "$@" >>"$OUT/log.txt" 2>&1
  rc=$?
  if [ $rc = 0 ] && [ "$kind" != - ]; then
    line=$("$PY" -m bench.gpu_summary "$kind" "$json" 2>&1 | tail -1)
  else
    line=$(grep -v '^\s*$' "$OUT/log.txt" | tail -1 | cut -c1-300)
  fi
  [ $rc = 0 ] || status=1
  local verdict=ok
  [ $rc = 0 ] || verdict="FAILED (exit $rc$([ $rc = 124 ] && echo ", timed out after ${limit}s"))"
  echo "$name: $verdict in $((SECONDS - started))s: $line" | tee -a "$OUT/summary.txt"
}

"$PY" - <<PY 2>&1 | tee -a "$OUT/summary.txt"
import torch, transformers
dev = "$DEV"
assert dev == "cpu" or torch.cuda.is_available(), "no CUDA device"
name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu (dry run)"
print(f"device: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"transformers {transformers.__version__}")
PY

UNIPELT_TEST_DEVICE=$DEV step equality "$T_EQ" - - -- \
  "$PY" -m pytest -q -p no:cacheprovider -o addopts= tests/unit/test_device_equality.py \
  tests/unit/test_runner_buckets.py
grep -E "passed|failed|error" "$OUT/log.txt" | tail -3 >"$OUT/equality.txt" || true

step minilm "$T_MINILM" forward "$OUT/forward_minilm.json" -- \
  "$PY" -m bench.forward.fused_forward --device $DEV --backbone "$MINILM" "${FWD[@]}" \
  --json "$OUT/forward_minilm.json"

step bertbase "$T_BERT" forward "$OUT/forward_bert_base.json" -- \
  "$PY" -m bench.forward.fused_forward --device $DEV --backbone "$BERT" "${FWD_BERT[@]}" \
  --json "$OUT/forward_bert_base.json"

step train "$T_TRAIN" train "$OUT/train_step.json" -- \
  "$PY" -m bench.training.train_step --device $DEV --backbone "$MINILM" \
  --data-dir "$CARRY/glue" --task sst2 --methods apl,ft "${TRAIN[@]}" \
  --json "$OUT/train_step.json"

step tiers "$T_TIERS" tiers "$OUT/tier_copy.json" -- \
  "$PY" -m bench.forward.tier_copy --device $DEV --backbone "$MINILM" "${TIERS[@]}" \
  --json "$OUT/tier_copy.json"

echo "gpu check done (exit $status); files in $OUT" | tee -a "$OUT/summary.txt"
exit $status
