#!/usr/bin/env bash
# Trains the `ritz` and `paper` loss presets on every built-in 2-D set and prints the sample-quality
# table (sliced W2 of 5 000 RK4-100 flow samples to fresh true samples, over the two-sample floor).
# Usage: scripts/compare_presets.sh [STEPS] [OUT_DIR]   (needs: cargo build --release -p vpfb-trainer)
set -euo pipefail
steps=${1:-4000}
out=${2:-target/preset-comparison}
bin=${VPFB_TRAIN:-target/release/vpfb-train}
mkdir -p "$out"
printf '%-13s %-6s %10s %10s %8s %10s\n' data loss swd floor ratio steps/s
for data in moons circles 8gaussians checkerboard spirals pinwheel; do
  for loss in ritz paper; do
    run="$out/$data-$loss"
    rm -rf "$run"
    "$bin" fit --data "$data" --loss "$loss" --steps "$steps" --out "$run" >"$run.log" 2>&1 || { echo "$data $loss: failed (see $run.log)"; continue; }
    python3 - "$run/metrics.json" "$data" "$loss" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); q = m["sample_quality"]
print(f'{sys.argv[2]:<13} {sys.argv[3]:<6} {q["swd"]:10.4f} {q["swd_floor"]:10.4f} {q["ratio"]:8.2f} {m["steps_per_s"]:10.1f}')
PY
  done
done
