#!/bin/sh
# Measures the detector's merge modes, thresholds and pyramid on a model's held-out
# images (the validation split recorded in the model file) and prints one table row
# per setting: the table in the README that the defaults were chosen from.
#   sh tools/tune_detector.sh BINARY MODEL IMAGES LABELS OUT_DIR
set -e
bin=$1 model=$2 images=$3 labels=$4 out=$5
pyramid=2,1.41,1,0.71,0.5,0.35
printf '| merge | threshold | scales | AP@0.5 [95%% CI] | AP | per-label IoU | top-1 IoU | dets/image |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for scales in 1 $pyramid; do
  for thr in 0.5 0.95; do
    for merge in none nms cluster; do
      dir=$out/$merge-$thr-$(echo $scales | tr , _)
      mkdir -p "$dir"
      "$bin" evaluate --model "$model" --images "$images" --labels "$labels" --out "$dir" \
          --merge $merge --threshold $thr --scales $scales --quiet >/dev/null
      /usr/bin/python3 - "$dir/metrics.json" "$merge" "$thr" "$scales" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["detection"]
ci = m["ci95"]["AP50"]
sc = "1" if sys.argv[4] == "1" else "pyramid"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sc} | {m['AP50']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | "
      f"{m['AP']:.3f} | {m['iou_per_label']['mean']:.3f} | {m['top1_iou']:.3f} | "
      f"{m['detections_per_image']:.1f} |")
PY
    done
  done
done
