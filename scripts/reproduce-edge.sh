#!/usr/bin/env bash
# Trains the shipped `edge` model (models/edge.q8, an `edge14` distilled from `wide`) again
# from the shipped files, as models/README.md tells: the teacher `wide` as an int8 blob
# (models/wide.onnx quantized; the shipped run distilled from `wide`'s int8 blob too), then
# `trainer fit` of the default kind (`edge14`) with the default recipe and seed, distilled
# from it, exporting ONNX and the int8 blob; then both blobs on the test set.
#
#   scripts/reproduce-edge.sh [OUT]     # default runs/edge-again; about 70 minutes on 2 cores
#
# OUT must not hold a run already (fit refuses to replace one). Needs the Debian dataset
# (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/edge-again}
cargo build --release -q -p fmnist-trainer -p fmnist-runtime-cli
bin=target/release
mkdir -p "$out"
[ -e "$out/wide.q8" ] || "$bin/trainer" export --from-onnx models/wide.onnx --q8 "$out/wide.q8"
"$bin/trainer" fit --teacher "$out/wide.q8" --out "$out/run" --no-progress \
    --export "$out/edge.onnx" --export-q8 "$out/edge.q8"
for model in models/edge.q8 "$out/edge.q8"; do
    printf '%s: ' "$model"
    "$bin/runtime" eval --model "$model" | grep "overall accuracy"
done
