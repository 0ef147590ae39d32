#!/bin/sh
# run.sh — fuzz one target for a while, from the committed corpus (after `make fuzz`).
#   fuzz/run.sh TARGET SECONDS
# New inputs go to build-fuzz/corpus/TARGET (the committed corpus is only read), crashes
# to build-fuzz/artifacts/TARGET/, the log to build-fuzz/TARGET.log; the last line says
# how many executions ran. To fold the new inputs back into the committed corpus:
#   build-fuzz/fuzz_TARGET -merge=1 fuzz/corpus/TARGET build-fuzz/corpus/TARGET
set -eu
t=$1
secs=$2
cd "$(dirname "$0")/.."
case $t in
  coco|results|model) dict=fuzz/dict/json.dict ;;
  voc) dict=fuzz/dict/xml.dict ;;
  yolo) dict=fuzz/dict/yolo.dict ;;
  *) dict= ;;
esac
mkdir -p build-fuzz/corpus/$t build-fuzz/artifacts/$t
build-fuzz/fuzz_$t -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
  ${dict:+-dict=$dict} -artifact_prefix=build-fuzz/artifacts/$t/ \
  build-fuzz/corpus/$t fuzz/corpus/$t >build-fuzz/$t.log 2>&1 || true
grep -E "stat::number_of_executed_units|Done [0-9]+ runs|ERROR|SUMMARY" build-fuzz/$t.log | tail -n 5
ls build-fuzz/artifacts/$t
