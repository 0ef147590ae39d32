#!/bin/sh
# make_figures.sh — the README's two pictures, from the command-line tool itself.
#
#   sh tools/make_figures.sh BINARY PAPER_MODEL DETECT_MODEL BUSI_DIR EVAL_DIR OUT_DIR
#
# docs/img/overlays.jpg: four held-out BUSI frames (of the image-protocol split both
#   presets share, seed 1), the paper preset with the paper's detector (every window
#   with p > 0.95, one scale, no merging) above the detection preset (its tuned
#   detector, boxes with score > 0.3). The frames were picked from the per-image
#   top-1 IoU of the detection preset on the held-out images: two successes on which
#   the paper's detector sprays windows, its failure (benign-looking malignant_126,
#   best box IoU 0.17) and a lesion-free frame on which the paper's detector fires.
# docs/img/report.jpg: the top of EVAL_DIR/report.html (from `lymphdet evaluate`),
#   rendered by headless Chromium.
# Needs ImageMagick (montage, convert) and chromium, from Debian's packages.
set -eu
bin=$1 paper=$2 detect=$3 busi=$4 eval_dir=$5 out=$6
frames="benign_290.jpg benign_002.jpg malignant_126.jpg normal_114.jpg"
tmp=$(mktemp -d /tmp/lymphdet-figures-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

paths=""
for f in $frames; do paths="$paths $busi/images/$f"; done
# shellcheck disable=SC2086
"$bin" detect --model "$paper" --labels "$busi/annotations.json" --merge none \
    --threshold 0.95 --scales 1 --out "$tmp/paper.json" --overlay "$tmp/paper" --quiet $paths
# shellcheck disable=SC2086
"$bin" detect --model "$detect" --labels "$busi/annotations.json" --threshold 0.3 \
    --out "$tmp/detect.json" --overlay "$tmp/detect" --quiet $paths

tiles=""
for row in paper detect; do
    for f in $frames; do tiles="$tiles $tmp/$row/${f%.jpg}.png"; done
done
# shellcheck disable=SC2086
montage $tiles -tile 4x2 -geometry 360x360+3+3 -background white -quality 85 "$out/overlays.jpg"

chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$tmp/chromium" --hide-scrollbars --window-size=1100,1500 \
    --screenshot="$tmp/report.png" "file://$(realpath "$eval_dir/report.html")" 2>/dev/null
convert "$tmp/report.png" -resize 900x -quality 85 "$out/report.jpg"
echo "wrote $out/overlays.jpg and $out/report.jpg"
