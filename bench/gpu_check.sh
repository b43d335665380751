#!/usr/bin/env bash
# The GPU check (prepared to finish in under 8 minutes on one GPU): the forward's equality
# tests on CUDA, then the ceiling against our mixed forward at 1/100/1,000 resident APL tasks,
# batch 32 and 128, float32 and bfloat16, CUDA graphs off and on. Writes JSON and logs to
# $OUT (default bench/results/gpu). Run from the repository root: bash bench/gpu_check.sh
set -euo pipefail
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY - <<'PY' | tee "$OUT/device.txt"
import torch
assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
PY
status=0
UNIPELT_TEST_DEVICE=cuda timeout 150 $PY -m pytest -q -p no:cacheprovider \
  tests/unit/test_device_equality.py tests/unit/test_runner_buckets.py \
  --junitxml "$OUT/equality.xml" 2>&1 | tail -20 | tee "$OUT/equality.txt" || status=1
timeout 320 $PY -m bench.forward.fused_forward --device cuda --threads 4 \
  --tasks 1 100 1000 --batch 32 128 --dtype float32 bfloat16 --graphs off on --windows 20 \
  --json "$OUT/forward.json" 2>&1 | tee "$OUT/forward.txt" || status=1
echo "wrote $OUT/forward.json (exit $status)"
exit $status
