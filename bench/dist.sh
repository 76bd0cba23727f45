#!/usr/bin/env bash
# Data parallel on one machine: 1 rank x T threads against N ranks x T/N
# threads (mpirun), the same update (accum windows of 256 tokens in all): the
# all-reduce overlapping the backward, after it, and ZeRO-1 (--zero 1). Runs
# alternated; medians of the updates after the first; peak RSS of rank 0.
#   bench/dist.sh [MODEL] [UPDATES] [ROUNDS] [RANKS] [ACCUM]
# Prints ms per update, tokens/s, and per rank the time the gradient sums
# took (comm) and the time the update waited for them (wait): with the
# overlap, comm - wait was hidden behind the backward.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-stories15m}
updates=${2:-6}
rounds=${3:-2}
ranks=${4:-2}
accum=${5:-2}
bin=${ANETRAIN_BIN:-./anetrain}
py=/usr/bin/python3
cores=$(nproc)
if ! command -v mpirun > /dev/null; then
  echo "bench/dist.sh: skipped: no mpirun (apt-get install openmpi-bin libopenmpi-dev, then rebuild)"
  exit 0
fi
if ! "$bin" --version 2>&1 | grep -q "MPI: yes"; then
  echo "bench/dist.sh: skipped: $bin was built without MPI (make info)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" train --model "$model" --steps 0 --ckpt "$tmp/prep.bin" --out-dir "$tmp/data" -q
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi="mpirun --oversubscribe --bind-to none -np $ranks"
run() {  # NAME PREFIX ACCUM_PER_RANK FLAGS...
  local name=$1 prefix=$2 acc=$3
  shift 3
  rm -f "$tmp/$name".*
  $prefix "$bin" train --model "$model" --scratch --steps "$updates" --accum "$acc" --seq 256 --lr 3e-4 --warmup 1 \
    --eval-every 0 --save-every 0 --out-dir "$tmp/data" --ckpt "$tmp/$name.bin" --log "$tmp/$name.jsonl" -q "$@"
  $py - "$tmp/$name.jsonl" "$name" <<'PY'
import json, statistics, sys
ms, comm, wait, rss = [], 0, 0, 0
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["type"] == "step": ms.append(d["ms"]); rss = max(rss, d.get("rss_mb") or 0)
    if d["type"] == "world": comm, wait = d["comm_ms"], d["comm_wait_ms"]
steps = len(ms)
print(sys.argv[2], "%.1f" % statistics.median(ms[1:]), "%.1f" % (comm / steps), "%.1f" % (wait / steps), rss)
PY
}
echo "model $model, $updates updates of $accum windows x 256 tokens, $rounds rounds, $cores cores"
for r in $(seq "$rounds"); do
  run one "" "$accum" --threads "$cores"
  run overlap "$mpi" "$((accum / ranks))" --threads "$((cores / ranks > 0 ? cores / ranks : 1))" --comm-overlap on
  run after "$mpi" "$((accum / ranks))" --threads "$((cores / ranks > 0 ? cores / ranks : 1))" --comm-overlap off
  run zero "$mpi" "$((accum / ranks))" --threads "$((cores / ranks > 0 ? cores / ranks : 1))" --zero 1
done | tee "$tmp/all.txt"
$py - "$tmp/all.txt" "$ranks" "$accum" <<'PY'
import statistics, sys
t = {}
for l in open(sys.argv[1]):
    p = l.split()
    t.setdefault(p[0], []).append([float(x) for x in p[1:]])
ranks, accum = int(sys.argv[2]), int(sys.argv[3])
one = statistics.median(x[0] for x in t["one"])
label = {"one": "1 rank", "overlap": f"{ranks} ranks, overlapped", "after": f"{ranks} ranks, sum after",
         "zero": f"{ranks} ranks, ZeRO-1"}
for k in ("one", "overlap", "after", "zero"):
    ms = statistics.median(x[0] for x in t[k])
    comm = statistics.median(x[1] for x in t[k]); wait = statistics.median(x[2] for x in t[k])
    rss = max(x[3] for x in t[k])
    hid = f", {100 * (1 - wait / comm):3.0f}% hidden" if comm > 0 else "             "
    print(f"{label[k]:20s} {ms:8.1f} ms/update {accum * 256 / ms * 1000:6.0f} tokens/s  "
          f"sums {comm:6.1f} ms/update, waited {wait:6.1f}{hid}  {one / ms:.2f}x  RSS {rss / 1024:.2f} GiB")
PY
