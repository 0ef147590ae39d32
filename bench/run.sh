#!/bin/sh
# run.sh — lymphdet's benchmark beside its PyTorch peer, one table with the ratios
# (issue 8; docs/performance.md).
#
#   make bench && bench/run.sh [--quick] [--no-peer]
#
# Runs bench/peer_torch.py (Debian's torch, /usr/bin/python3) and build/bench, each
# with 1 thread and then 2, and prints per work item: the median ms of both, the
# speed-up of lymphdet (torch ms / lymphdet ms), lymphdet's GFLOP/s and its fraction
# of the peer's measured single-thread sgemm peak, and lymphdet's own 2-thread
# speed-up. --quick: fewer repeats and no 20-epoch training (about a minute instead
# of about five). The raw results stay in $OUT (default /tmp/lymphdet-bench).
set -eu
cd "$(dirname "$0")/.."
QUICK=""
PEER=1
for a in "$@"; do
    case "$a" in
    --quick) QUICK="--quick" ;;
    --no-peer) PEER=0 ;;
    *) echo "usage: bench/run.sh [--quick] [--no-peer]" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-/tmp/lymphdet-bench}
mkdir -p "$OUT"
PY=/usr/bin/python3
INPROC='scan*,pyramid469,windows469,train_step,train_epoch_*,train_paper'

[ -x build/bench ] || { echo "run.sh: build/bench missing: make bench" >&2; exit 1; }
: >"$OUT/peer1.tsv"
: >"$OUT/peer2.tsv"
if [ "$PEER" = 1 ]; then
    echo "peer: PyTorch, 1 thread ..." >&2
    $PY bench/peer_torch.py --tsv --threads 1 $QUICK >"$OUT/peer1.tsv"
    echo "peer: PyTorch, 2 threads ..." >&2
    $PY bench/peer_torch.py --tsv --threads 2 $QUICK --only "$INPROC" >"$OUT/peer2.tsv"
fi
PEAK=$(awk -F'\t' '$1 == "sgemm" { printf "%.2f", $5 / ($2 / 1e3) }' "$OUT/peer1.tsv")
echo "lymphdet: 1 thread ..." >&2
build/bench --tsv --threads 1 $QUICK >"$OUT/lymphdet1.tsv"
echo "lymphdet: 2 threads ..." >&2
build/bench --tsv --threads 2 $QUICK --only "$INPROC" >"$OUT/lymphdet2.tsv"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peak: sgemm ${PEAK:-?} GFLOP/s (1 thread, torch's oneDNN)"
awk -F'\t' -v peak="${PEAK:-0}" '
    FILENAME ~ /lymphdet1/ { key[++n] = $1; l1[$1] = $2; work[$1] = $3; unit[$1] = $4; gf[$1] = $5 }
    FILENAME ~ /lymphdet2/ { l2[$1] = $2 }
    FILENAME ~ /peer1/     { p1[$1] = $2 }
    FILENAME ~ /peer2/     { p2[$1] = $2 }
    function cell(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.1fx", a / b) }
    END {
        printf "%-18s | %11s %11s %7s | %11s %11s %7s | %8s %5s | %6s\n", "work (ms)",
               "lymphdet", "torch", "speedup", "lymphdet 2T", "torch 2T", "speedup",
               "GFLOP/s", "peak", "2T/1T"
        for (i = 1; i <= n; i++) {
            k = key[i]
            if (unit[k] == "MB") {
                printf "%-18s | %9.1f MB  (peak memory)\n", k, l1[k]
                continue
            }
            g = gf[k] > 0 ? gf[k] / (l1[k] / 1e3) : ""
            printf "%-18s | %11s %11s %7s | %11s %11s %7s | %8s %5s | %6s\n", k,
                   cell(l1[k], "%.3f"), cell(p1[k], "%.3f"), ratio(p1[k], l1[k]),
                   cell(l2[k], "%.3f"), cell(p2[k], "%.3f"), ratio(p2[k], l2[k]),
                   cell(g, "%.1f"), (g != "" && peak > 0) ? sprintf("%.0f%%", 100 * g / peak) : "-",
                   ratio(l1[k], l2[k])
        }
    }' "$OUT/lymphdet1.tsv" "$OUT/lymphdet2.tsv" "$OUT/peer1.tsv" "$OUT/peer2.tsv"
awk -F'\t' '$1 ~ /^detect_folder_t[12]$/ { t[$1] = $2 }
    END { if (t["detect_folder_t1"] && t["detect_folder_t2"])
              printf "detect over a folder: %.2fx faster with 2 threads than 1\n",
                     t["detect_folder_t1"] / t["detect_folder_t2"] }' "$OUT/lymphdet1.tsv"
