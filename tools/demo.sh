#!/bin/sh
# The quick start's main job: train the network on a folder of frames and boxes,
# detect on the same folder's held-out images, and evaluate with a report.
#   sh tools/demo.sh BINARY DATA_DIR OUT_DIR      (DATA_DIR holds images/ and annotations.json)
set -e
bin=$1 data=$2 out=$3
mkdir -p "$out"
"$bin" train --images "$data/images" --labels "$data/annotations.json" \
    --out "$out/model.safetensors" --quiet
"$bin" detect --model "$out/model.safetensors" --labels "$data/annotations.json" \
    --out "$out/results.json" --overlay "$out/overlays" --quiet "$data/images"
"$bin" evaluate --model "$out/model.safetensors" --images "$data/images" \
    --labels "$data/annotations.json" --out "$out/evaluation" --quiet
echo "report: $out/evaluation/report.html"
