#!/bin/bash
# What resuming costs and saves, on one corpus with `wordstats`:
#   benches/resume.sh DOCKET CORPUS WORK
# runs the corpus twice with the job identity and twice with --fresh (no
# identity: the stat pass over the files is skipped), once more on a
# finished job, and once killed (SIGKILL) at half its outcomes and resumed;
# checks the resumed results against the uninterrupted run's. Needs the
# sqlite3 command and /usr/bin/time. CORPUS: e.g. the 100,000-file corpus
# benches/scale.py generates.
set -u
D=${1:?the docket binary}
C=${2:?a corpus directory}
W=${3:?a work directory}
mkdir -p "$W"
cd $W
run() { # label state args...
  local label=$1 state=$2; shift 2
  /usr/bin/time -f "%e s wall, %M KB peak, %U user %S sys" -o $W/$label.time $D run --quiet --evaluator wordstats --state $state --out $W/out-$label "$@" $C > $W/$label.out 2> $W/$label.err
  echo "== $label rc=$?"; head -3 $W/$label.out; cat $W/$label.time
}
rm -rf $W/s-*
run identity $W/s-identity
run fresh $W/s-fresh --fresh
run identity2 $W/s-identity2
run fresh2 $W/s-fresh2 --fresh
run finished $W/s-identity
# kill at ~50 % of the outcomes, then resume
rm -rf $W/s-kill
half=$(( $(find $C -type f | wc -l) / 2 ))
$D run --quiet --evaluator wordstats --state $W/s-kill --out $W/out-kill $C > /dev/null 2>&1 &
pid=$!
while true; do
  n=$(sqlite3 -readonly $W/s-kill/docket.sqlite3 "select count(*) from outcomes" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge "$half" ] && break
  sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null
echo "killed at $(sqlite3 -readonly $W/s-kill/docket.sqlite3 'select count(*) from outcomes') outcomes"
run resumed $W/s-kill
cmp <(sed -E 's/"(created_at|finished_at|processing_time_seconds|avg_processing_time_seconds)":[^,}]*//g' $W/out-resumed/results.json) <(sed -E 's/"(created_at|finished_at|processing_time_seconds|avg_processing_time_seconds)":[^,}]*//g' $W/out-identity/results.json) && echo "resumed results identical to the uninterrupted run's"
