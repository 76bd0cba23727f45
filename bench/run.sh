#!/bin/bash
# bench/run.sh — `make bench`: anetrain's CPU training step against PyTorch on this machine.
#
# For each model: this machine's sgemm peak on the model's GEMM shapes
# (bench/gemm_peak), then ROUNDS rounds of one process each of anetrain fp32,
# the PyTorch peer (fp32) and anetrain bf16, in alternating order (A B C, then
# C B A, ...) so that drift in the machine's load cancels. Each process runs
# WARMUP steps, then STEPS timed steps of: zero grads, forward, backward, clip,
# AdamW (the trainer's update with accum 1), on one window of SEQ random tokens.
# Then a loss curve: CURVE_STEPS updates of stories15m on TinyStories, fp32 and
# bf16 from the same seed and data order, compared on the validation loss (the
# same 40 windows of the TinyStories validation head every 25 updates) — a
# single training window's loss is too noisy to compare step by step.
#
# Environment (defaults in brackets):
#   BENCH_BUILD   directory with bench_train and gemm_peak [build]
#   ANETRAIN      the anetrain binary [./anetrain]
#   MODELS        ["stories15m stories110m"]     ROUNDS  rounds of the A/B/C alternation [3]
#   SEQ [256]  THREADS [2]  WARMUP [2]  STEPS [5]
#   CURVE_STEPS   [200] (0 skips the curve)       CURVE_MODEL [stories15m]
#   CURVE_BOUND   stated bound on |val_loss_bf16 - val_loss_fp32| at every evaluation [0.05]
#   KINDS         the processes of a round, alternated ["fp32 torch bf16"]; fp32-recompute is --recompute
#   PYTHON        [/usr/bin/python3]
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BENCH_BUILD:-build}
ANETRAIN=${ANETRAIN:-./anetrain}
MODELS=${MODELS:-"stories15m stories110m"}
ROUNDS=${ROUNDS:-3}
SEQ=${SEQ:-256}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
STEPS=${STEPS:-5}
CURVE_STEPS=${CURVE_STEPS:-200}
CURVE_MODEL=${CURVE_MODEL:-stories15m}
CURVE_BOUND=${CURVE_BOUND:-0.05}
PYTHON=${PYTHON:-/usr/bin/python3}
KINDS=${KINDS:-"fp32 torch bf16"}
DATA=${DATA:-../shared/data}

OUT=$(mktemp -d /tmp/anetrain-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

# PyTorch's OpenMP threads sleep instead of spinning between ops, and get the
# same thread count; anetrain's pool takes THREADS through bench_train's argument.
peer() { OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS "$PYTHON" bench/peer_torch.py "$1" "$SEQ" "$WARMUP" "$STEPS" "$THREADS"; }
ours() { "$BUILD/bench_train" "$1" "$SEQ" "$WARMUP" "$STEPS" "$THREADS" "$2"; }

have_torch=1
"$PYTHON" -c "import torch" 2>/dev/null || { have_torch=0; echo "note: $PYTHON cannot import torch; the peer is skipped"; }

echo "anetrain bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "threads $THREADS, seq $SEQ, warmup $WARMUP + $STEPS steps per process, $ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cpu flags: $(grep -o -w -E 'avx2|fma|f16c|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"

# oneDNN's matmul on this CPU (fp32 and bf16), when libdnnl-dev is installed: the
# measured reason the bf16 mode runs on OpenBLAS with rounded inputs here.
if [ -f /usr/include/dnnl.h ] && ${CC:-cc} -O2 -std=c11 -o "$OUT/dnnl_matmul" bench/dnnl_matmul.c -ldnnl 2>/dev/null; then
    OMP_NUM_THREADS=$THREADS "$OUT/dnnl_matmul" 5
else
    echo "oneDNN: libdnnl-dev not installed; its matmul is not measured"
fi

for model in $MODELS; do
    "$BUILD/gemm_peak" "$model" "$SEQ" "$THREADS" 5 > "$OUT/$model.peak" 2> "$OUT/$model.peak.txt"
    : > "$OUT/$model.runs"
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then order=$KINDS; else order=$(echo "$KINDS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
        for what in $order; do
            if [ "$what" = torch ]; then
                [ $have_torch = 1 ] && peer "$model" | sed "s/^{/{\"round\":$r,/" >> "$OUT/$model.runs"
            else
                ours "$model" "$what" | sed "s/^{/{\"round\":$r,/" >> "$OUT/$model.runs"
            fi
        done
    done
    "$PYTHON" bench/summarize.py "$model" "$OUT/$model.peak" "$OUT/$model.runs" "$OUT/$model.peak.txt"
done

if [ "$CURVE_STEPS" -gt 0 ]; then
    text="$DATA/tinystories/TinyStories-train.head-2MiB.txt"
    val="$DATA/tinystories/TinyStories-validation.head.txt"
    tok="$DATA/llama2/tokenizer.bin"
    if [ -f "$text" ] && [ -f "$val" ] && [ -f "$tok" ]; then
        "$ANETRAIN" tokenize -z "$tok" -o "$OUT/ts.bin" "$text" > /dev/null
        "$ANETRAIN" tokenize -z "$tok" -o "$OUT/val.bin" "$val" > /dev/null
        for prec in fp32 bf16; do
            "$ANETRAIN" train --model "$CURVE_MODEL" --data "$OUT/ts.bin" --val-data "$OUT/val.bin" \
                --steps "$CURVE_STEPS" --accum 1 --seq "$SEQ" --lr 1e-3 --warmup 20 --eval-every 25 \
                --eval-windows 40 --save-every 0 --threads "$THREADS" --quiet \
                --precision "$prec" --seed 7 --ckpt "$OUT/ck_$prec.bin" --log "$OUT/curve_$prec.jsonl"
        done
        "$PYTHON" bench/summarize.py --curve "$OUT/curve_fp32.jsonl" "$OUT/curve_bf16.jsonl" "$CURVE_BOUND" "$CURVE_MODEL"
    else
        echo "loss curve skipped: $text, $val or $tok missing"
    fi
fi
