#!/usr/bin/env bash
# The main job as a new user runs it: a fresh clone of this repository, an empty model cache, then
# the README's first line (install, base-model pretraining, `retu pipeline`). Repeated RUNS times
# (default 3); prints each run's wall clock, the seconds of every stage, and the median.
#   bash benchmarks/bench_pipeline.sh [RUNS]
# Runs one after another (two trainings at once on 2 cores slow each ~20x).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
line=$(awk '/^```bash/{getline; print; exit}' "$repo/README.md")
echo "command: $line"
walls=()
for i in $(seq 1 "$runs"); do
  work=$(mktemp -d)
  git clone -q "$repo" "$work/retu"
  start=$(date +%s.%N)
  (cd "$work/retu" && RETU_CACHE="$work/cache" bash -c "$line" > "$work/out.log" 2>&1) || {
    echo "run $i failed; log: $work/out.log"; tail -5 "$work/out.log"; exit 1; }
  end=$(date +%s.%N)
  wall=$(python3 -c "print(round($end - $start, 1))")
  walls+=("$wall")
  echo "run $i: ${wall} s wall (clone in $work)"
  python3 "$repo/benchmarks/pipeline_stages.py" "$work/retu/runs/pipeline" --start "$start"
done
python3 -c "import statistics, sys; w = [float(v) for v in sys.argv[1:]]; print(f'median of {len(w)}: {statistics.median(w):.1f} s ({statistics.median(w) / 60:.2f} min)')" "${walls[@]}"
