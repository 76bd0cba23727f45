#!/usr/bin/env bash
# The dynamic pipeline on the sim device vs the cpu pipeline: ms per training
# window (forward + backward + optimizer), same model, data and seed, runs
# alternated so drift on the machine hits both alike.
#   bench/sim_vs_cpu.sh [MODEL] [UPDATES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-stories15m}
updates=${2:-4}
rounds=${3:-2}
bin=${ANETRAIN_BIN:-./anetrain}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ms() {  # ms per update from the report line of a JSON log
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["type"] == "report": print("%.1f" % d["ms_per_step"])' "$1"
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
