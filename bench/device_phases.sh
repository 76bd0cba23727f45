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
#   bench/device_phases.sh [MODEL] [UPDATES]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-stories110m}
updates=${2:-5}
bin=${ANETRAIN_BIN:-./anetrain}
build=${BENCH_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" info "$model" > "$tmp/info.txt"
"$build/gemm_peak" "$model" 256 2 3 2> /dev/null > "$tmp/peak.json"
"$build/mem_bw" 2 1024 5 > "$tmp/bw.json"
"$bin" train --model "$model" --scratch --pipeline dynamic --device sim --steps "$updates" --accum 1 --seq 256 \
  --eval-every 0 --save-every 0 --out-dir "$tmp/data" --ckpt "$tmp/ck.bin" --log "$tmp/run.jsonl" -q
python3 - "$tmp" <<'PY'
import json, re, statistics, sys
tmp = sys.argv[1]
info = open(f"{tmp}/info.txt").read()
m = re.search(r"dim (\d+), hidden (\d+), layers (\d+), heads (\d+)/(\d+) \(q/kv\), head_dim (\d+), vocab (\d+)", info)
D, H, L, NH, NKV, HD, V = map(int, m.groups())
S = 256
QD, KVD = NH * HD, NKV * HD
N = L * (D * QD + 2 * D * KVD + QD * D + 3 * D * H)  # layer matrix elements
peak = json.load(open(f"{tmp}/peak.json"))["peak_gflops"]
bw = json.load(open(f"{tmp}/bw.json"))["fp16_convert_gbs"]
steps = [d for d in map(json.loads, open(f"{tmp}/run.jsonl")) if d["type"] == "step" and d["step"] > 1]
med = lambda k: statistics.median(d[k] for d in steps)
floors = {
    "staging": 12 * N / (bw * 1e6),
    "classifier": 6 * S * V * D / (peak * 1e6),
    "device": (4 * S * N + 12 * S * S * NH * HD * L) / (peak * 1e6),
    "dW": 2 * S * N / (peak * 1e6),
}
print(f"device phases: dynamic pipeline on sim, one window of {S} tokens, "
      f"median of {len(steps)} updates; sgemm peak {peak:.0f} GFLOPS, fp16 conversion {bw:.1f} GB/s")
rest = statistics.median(d["t_fwd"] + d["t_bwd"] - d["t_device"] - d["t_cpu_ops"] for d in steps)
rows = [
    ("update", med("ms"), None),
    ("device (sim)", med("t_device"), floors["device"]),
    ("staging (the stager thread, beside the forward)", med("t_staging"), floors["staging"]),
    ("cpu ops", med("t_cpu_ops"), None),
    ("  classifier", med("t_cpu_cls"), floors["classifier"]),
    ("  surface I/O", med("t_cpu_io"), None),
    ("  the rest", med("t_cpu_ops") - med("t_cpu_cls") - med("t_cpu_io"), None),
    ("the rest of forward + backward: dW products, stager waits", rest, floors["dW"]),
    ("optimizer", med("t_optim"), None),
]
for name, ms, floor in rows:
    f = f"   floor {floor:7.1f} ms  ({ms / floor:4.2f}x)" if floor else ""
    print(f"  {name:58s} {ms:8.1f} ms{f}")
print("  (on sim the dW products run inline in the backward; on the ANE on the dW worker, beside the device)")
PY
