#!/usr/bin/env bash
# The main job, end to end on MNIST: train the bcnn BNN with the shipped
# preset, convert it with LCE (binary dense rewrite), verify it on the full
# test set, benchmark the C engine against LCE's interpreter, export C, and
# build and run Cortex-M4 firmware under QEMU.
#
#   tools/main-job.sh [OUT_DIR]        (default: runs/main-job)
#
# Uses EDGEBNN_DATA when set, else ../shared/data beside the checkout.
# EDGEBNN_MAIN_JOB_CONFIG picks another preset (tests use "smoke": one epoch
# on 2,000 images) and EDGEBNN_MAIN_JOB_RUNS the number of timed bench runs.
# A finished training run in OUT_DIR is kept; an interrupted one is resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/main-job}"
if [ -z "${EDGEBNN_DATA:-}" ] && [ -d ../shared/data ]; then
  export EDGEBNN_DATA="$(cd ../shared/data && pwd)"
fi
CONFIG="${EDGEBNN_MAIN_JOB_CONFIG:-mnist-bcnn-binary}"
RUNS="${EDGEBNN_MAIN_JOB_RUNS:-500}"
RUN="$OUT/$CONFIG"
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*" >&2; }

step "train (edgebnn/presets/$CONFIG.yml)"
if [ -f "$RUN/metrics.json" ]; then
  echo "already trained: $RUN" >&2
elif [ -d "$RUN" ]; then
  edgebnn train mnist --config "$CONFIG" --out "$RUN" --resume
else
  edgebnn train mnist --config "$CONFIG" --out "$RUN"
fi

step "convert (LCE, binary dense layers rewritten as binary convolutions)"
edgebnn convert "$RUN"

step "verify on the full MNIST test set"
edgebnn verify "$RUN"

step "bench: C engine against LCE's interpreter, one thread"
edgebnn bench "$RUN/model.tflite" --engine c --against "$RUN/model.tflite" \
  --against-engine lce --threads 1 --warmup 50 --runs "$RUNS"

step "export C"
edgebnn export "$RUN/model.tflite" -o "$OUT/c-export" --name mnist_bcnn

step "firmware for cortex-m4, run under QEMU"
rm -rf "$OUT/fw-cortex-m4"
edgebnn firmware build "$RUN/model.tflite" -t cortex-m4 -o "$OUT/fw-cortex-m4" --dataset mnist
edgebnn firmware run "$OUT/fw-cortex-m4"
