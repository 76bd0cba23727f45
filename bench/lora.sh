#!/usr/bin/env bash
# LoRA against full fine-tuning, in anetrain and in the PyTorch peer
# (bench/peer_torch.py, LoRA written there by hand): ms per update of one
# window of 256 tokens and peak RSS, same model, runs alternated.
#   bench/lora.sh [MODEL] [RANK] [UPDATES] [ROUNDS] [PIPELINE]
# PIPELINE (default cpu) other than cpu runs on --device sim, without the
# peer, and also reports the kernels compiled and the exec() restarts of the
# whole run (the static pipelines recompile every update of full training;
# under LoRA they compile once).
# anetrain's base is the model's random init saved as a checkpoint (LoRA
# needs a model file; the speed does not depend on the weights).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-stories110m}
rank=${2:-8}
updates=${3:-4}
rounds=${4:-2}
pipeline=${5:-cpu}
dev=""
[ "$pipeline" != cpu ] && dev="--device sim"
bin=${ANETRAIN_BIN:-./anetrain}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" train --model "$model" --steps 0 --ckpt "$tmp/base.bin" -q
"$bin" train --model "$model" --steps 0 --ckpt "$tmp/data-prep.bin" --out-dir "$tmp/data" -q
stats() {  # median ms of the step records after the first, the peak rss_mb, the run's compiles and restarts
  $py -c 'import json,statistics,sys
ms, rss, rep = [], 0, {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["type"] == "step":
        ms.append(d["ms"]); rss = max(rss, d.get("rss_mb") or 0)
    if d["type"] == "report": rep = d
print("%.1f %.0f %d %d" % (statistics.median(ms[1:]), rss, rep.get("run_kernels_compiled", rep.get("kernels_compiled", 0)),
                           rep.get("restarts", 0)))' "$1"
}
echo "model $model, pipeline $pipeline, LoRA rank $rank on q,k,v,o,w1,w2,w3, $updates updates x 1 window of 256 tokens, $rounds rounds"
for r in $(seq "$rounds"); do
  for how in full lora; do
    extra=""
    [ $how = lora ] && extra="--lora $rank"
    rm -f "$tmp/$how".*
    "$bin" train --model "$tmp/base.bin" $extra --pipeline "$pipeline" $dev --steps "$updates" --accum 1 --seq 256 --lr 3e-4 --warmup 1 \
      --eval-every 0 --save-every 0 --out-dir "$tmp/data" --ckpt "$tmp/$how.bin" --log "$tmp/$how.jsonl" -q
    echo "round $r anetrain-$how $(stats "$tmp/$how.jsonl")"
    [ "$pipeline" != cpu ] && continue
    lr=0
    [ $how = lora ] && lr=$rank
    OMP_WAIT_POLICY=PASSIVE $py bench/peer_torch.py "$model" 256 1 "$((updates - 1))" 2 $lr > "$tmp/py.json"
    echo "round $r pytorch-$how $($py -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["median_ms"], round(d["peak_rss_mb"]))' "$tmp/py.json")"
  done
done | tee "$tmp/all.txt"
$py - "$tmp/all.txt" <<'PY'
import statistics, sys
t = {}
for l in open(sys.argv[1]):
    p = l.split()
    t.setdefault(p[2], []).append(tuple(float(x) for x in p[3:]))
for k in ("anetrain-full", "anetrain-lora", "pytorch-full", "pytorch-lora"):
    if k not in t: continue
    ms = statistics.median(x[0] for x in t[k]); rss = max(x[1] for x in t[k])
    extra = f"  kernels compiled {t[k][-1][2]:.0f}, restarts {t[k][-1][3]:.0f}" if len(t[k][-1]) > 2 else ""
    print(f"{k:14s} {ms:8.1f} ms/update  peak RSS {rss / 1024:.2f} GiB{extra}")
a, f = statistics.median(x[0] for x in t["anetrain-lora"]), statistics.median(x[0] for x in t["anetrain-full"])
print(f"anetrain LoRA / full {a / f:.2f}x", end="")
if "pytorch-lora" in t: print(f"; anetrain LoRA / PyTorch LoRA {a / statistics.median(x[0] for x in t['pytorch-lora']):.2f}x", end="")
print()
PY
