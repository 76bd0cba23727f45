#!/usr/bin/env bash
# The dynamic pipeline's host work on the sim device, phase by phase, beside
# each phase's floor on this machine:
#   staging      the weights into the surfaces: every layer matrix is staged
#                into two kernels, 4 bytes read + 2 written per element, at the
#                threaded fp32->fp16 conversion rate (bench/mem_bw)
#   classifier   the CPU classifier + softmax + cross-entropy: 3 x 2·S·V·D
#                flops at the sgemm peak of the step's shapes (bench/gemm_peak)
#   device (sim) the kernels' products on the CPU: forward and input-gradient
#                products of the layer matrices (2 x 2·S·N) and attention
#                (12·S²·NH·HD per layer), at the same peak
#   dW           the weight-gradient products (2·S·N): inline in the backward on
#                sim, on the dW worker beside the device on the ANE
# Medians over the updates after the first of one run.
#   bench/device_phases.sh [MODEL] [UPDATES] [TRAIN FLAGS...]
# e.g. --device-head (the classifier on the device: its floor is then part of
# the device's, and the CPU's classifier line is dL/d logits and the
# cross-entropy) or
# --compact-vocab (the rows in use: the floors count those; without --data it
# trains on the TinyStories head of $DATA, ../shared/data, in Llama 2 tokens)
# or --serial-staging (the weights staged on both threads before the forward:
# the staging line is then the phase alone, not the stager's time beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-stories110m}
[ $# -gt 0 ] && shift
updates=5
if [[ ${1:-} =~ ^[0-9]+$ ]]; then updates=$1; shift; fi
bin=${ANETRAIN_BIN:-./anetrain}
build=${BENCH_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" info "$model" > "$tmp/info.txt"
"$build/gemm_peak" "$model" 256 2 3 2> /dev/null > "$tmp/peak.json"
"$build/mem_bw" 2 1024 5 > "$tmp/bw.json"
if [[ " $* " == *" --compact-vocab "* && " $* " != *" --data "* ]]; then
  data=${DATA:-../shared/data}
  "$bin" tokenize --tokenizer "$data/llama2/tokenizer.bin" -o "$tmp/ts.bin" \
    "$data/tinystories/TinyStories-train.head-2MiB.txt" > /dev/null
  set -- "$@" --data "$tmp/ts.bin"
fi
"$bin" train --model "$model" --scratch --pipeline dynamic --device sim --steps "$updates" --accum 1 --seq 256 \
  --eval-every 0 --save-every 0 --out-dir "$tmp/data" --ckpt "$tmp/ck.bin" --log "$tmp/run.jsonl" -q "$@"
python3 - "$tmp" "$@" <<'PY'
import json, re, statistics, sys
tmp, flags = sys.argv[1], sys.argv[2:]
info = open(f"{tmp}/info.txt").read()
m = re.search(r"dim (\d+), hidden (\d+), layers (\d+), heads (\d+)/(\d+) \(q/kv\), head_dim (\d+), vocab (\d+)", info)
D, H, L, NH, NKV, HD, V = map(int, m.groups())
S = 256
QD, KVD = NH * HD, NKV * HD
N = L * (D * QD + 2 * D * KVD + QD * D + 3 * D * H)  # layer matrix elements
peak = json.load(open(f"{tmp}/peak.json"))["peak_gflops"]
bw = json.load(open(f"{tmp}/bw.json"))["fp16_convert_gbs"]
records = [json.loads(line) for line in open(f"{tmp}/run.jsonl")]
V = next(d for d in records if d["type"] == "start")["vocab_rows"]  # compacted: the rows in use
head = "--device-head" in flags
steps = [d for d in records if d["type"] == "step" and d["step"] > 1]
med = lambda k: statistics.median(d[k] for d in steps)
cls = 2 * S * V * D  # one classifier product
floors = {
    "staging": (12 * N + (12 * V * D if head else 0)) / (bw * 1e6),
    "classifier": None if head else 3 * cls / (peak * 1e6),
    "io": med("io_mb") / bw,  # MB / (GB/s) = ms
    "device": (4 * S * N + 12 * S * S * NH * HD * L + (2 * cls if head else 0)) / (peak * 1e6),
    "dW": (2 * S * N + (cls if head else 0)) / (peak * 1e6),
}
print(f"device phases: dynamic pipeline on sim{' with --device-head' if head else ''}, one window of {S} tokens, "
      f"{V} classifier rows, median of {len(steps)} updates; sgemm peak {peak:.0f} GFLOPS, "
      f"fp16 conversion {bw:.1f} GB/s")
rest = statistics.median(d["t_fwd"] + d["t_bwd"] - d["t_device"] - d["t_cpu_ops"] for d in steps)
rows = [
    ("update", med("ms"), None),
    ("device (sim)", med("t_device"), floors["device"]),
    ("staging (before the forward, both threads)" if "--serial-staging" in flags
     else "staging (the stager thread, beside the forward)", med("t_staging"), floors["staging"]),
    ("cpu ops", med("t_cpu_ops"), None),
    ("  dL/d logits, cross-entropy (the classifier on the device)" if head else "  classifier", med("t_cpu_cls"),
     floors["classifier"]),
    (f"  surface I/O not fused into an op ({med('io_mb'):.0f} MB)", med("t_cpu_io"), floors["io"]),
    ("  the rest (element-wise ops, conversions fused in)",
     med("t_cpu_ops") - med("t_cpu_cls") - med("t_cpu_io"), None),
    ("the rest of forward + backward: dW products, stager waits", rest, floors["dW"]),
    ("optimizer", med("t_optim"), None),
]
for name, ms, floor in rows:
    f = f"   floor {floor:7.1f} ms  ({ms / floor:4.2f}x)" if floor else ""
    print(f"  {name:58s} {ms:8.1f} ms{f}")
print("  (on sim the dW products run inline in the backward; on the ANE on the dW worker, beside the device)")
PY
