#!/usr/bin/env bash
# The dynamic pipeline on the sim device vs the cpu pipeline: ms per training
# window (forward + backward + optimizer; the median over the updates after the
# first, which also pays for first touches of memory), same model, data and
# seed, runs alternated so drift on the machine hits both alike.
#   bench/sim_vs_cpu.sh [MODEL] [UPDATES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-stories15m}
updates=${2:-4}
rounds=${3:-2}
bin=${ANETRAIN_BIN:-./anetrain}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ms() {  # median ms per update from the step records of a JSON log, the first (warm-up) update left out
  python3 -c 'import json,statistics,sys
ms = [d["ms"] for d in map(json.loads, open(sys.argv[1])) if d["type"] == "step" and d["step"] > 1]
print("%.1f" % statistics.median(ms))' "$1"
}
echo "model $model, $updates updates x 1 window of 256 tokens, $rounds rounds (cpu, dynamic/sim alternating)"
for r in $(seq "$rounds"); do
  for pl in cpu dynamic; do
    rm -f "$tmp/$pl.jsonl"
    "$bin" train --model "$model" --pipeline "$pl" --device sim --steps "$updates" --accum 1 --seq 256 \
      --lr 3e-4 --warmup 1 --eval-every 0 --save-every 0 --out-dir "$tmp/data" --ckpt "$tmp/$pl.bin" \
      --log "$tmp/$pl.jsonl" -q
    echo "round $r $pl $(ms "$tmp/$pl.jsonl") ms/update"
  done
done | tee "$tmp/all.txt"
python3 - "$tmp/all.txt" <<'PY'
import statistics, sys
t = {"cpu": [], "dynamic": []}
for l in open(sys.argv[1]):
    p = l.split()
    t[p[2]].append(float(p[3]))
c, d = statistics.median(t["cpu"]), statistics.median(t["dynamic"])
print(f"median: cpu {c:.1f} ms/update, dynamic on sim {d:.1f} ms/update, ratio dynamic/cpu {d / c:.2f}")
PY
