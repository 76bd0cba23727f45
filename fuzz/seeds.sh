#!/usr/bin/env bash
# fuzz/seeds.sh: the seed corpora of the fuzz harnesses (`make fuzz` runs it).
#
#   bash fuzz/seeds.sh FUZZ_DIR ANETRAIN DATA_DIR HARNESS...
#
# Fills FUZZ_DIR/pool with real files from DATA_DIR (../shared/data), files
# the anetrain binary writes (a checkpoint from `train --steps 1`, llama2.c
# exports, a Hugging Face export, token files from `tokenize`, every MIL
# kernel with its weight blobs) and a few made here byte by byte (formats
# nothing here writes: the original trainer's checkpoints, llm.c shards, ANTK
# with 32-bit ids, f16/bf16 safetensors). Then FUZZ_DIR/seeds/NAME gets the
# pool files that the "// seeds:" line of fuzz/fuzz_NAME.c names (globs
# relative to the pool). Seeds are small on purpose: a micro model (dim 16,
# one layer, GQA 2/1, vocab 64) keeps every execution fast.
set -euo pipefail
fuzz_dir=$1 anetrain=$2 data=$3
shift 3
pool=$fuzz_dir/pool
rm -rf "$pool" "$fuzz_dir/seeds"
mkdir -p "$pool"/{tokens,mil,mil-exec,hf-index} "$fuzz_dir/seeds"
work=$(mktemp -d "${TMPDIR:-/tmp}/anetrain-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
# the fuzz build's anetrain is instrumented; leaks at exit are not what we look for here
export ASAN_OPTIONS=detect_leaks=0
say() { echo "seeds: $*"; }

# little-endian integers as raw bytes (the format string is built on purpose)
# shellcheck disable=SC2059
le32() { local v=$(($1 & 0xffffffff)); printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $((v >> 8 & 255)))\\x$(printf %02x $((v >> 16 & 255)))\\x$(printf %02x $((v >> 24 & 255)))"; }
le16() { le32 "$1" | head -c 2; }
le64() { le32 "$1"; le32 $(($1 >> 32)); }
# a bundle (fuzz/fuzz.h): each file as a u32 length and its bytes
bundle() {
    local f n
    for f in "$@"; do n=$(wc -c < "$f") || exit 1; le32 "$n"; cat "$f"; done
}

# --- real files ----------------------------------------------------------------
for f in stories260K/stories260K.bin stories260K/stories260K-q8.bin stories260K/tok512.bin; do
    if [ -f "$data/$f" ]; then cp "$data/$f" "$pool/"; else say "missing $data/$f"; fi
done
[ -f "$data/llama2/tokenizer.bin" ] && cp "$data/llama2/tokenizer.bin" "$pool/llama2-tokenizer.bin"
[ -f "$data/qwen3-0.6b/config.json" ] && cp "$data/qwen3-0.6b/config.json" "$pool/qwen3-config.json"

# --- the micro model and what anetrain writes from it ------------------------------
# llama2.c v0 header: dim hidden layers heads kv_heads vocab seq; then 3376
# params + the RoPE tables (seq * head_dim) as zeros
{ for v in 16 32 1 2 1 64 16; do le32 $v; done; head -c $(((3376 + 16 * 8) * 4)) /dev/zero; } > "$pool/micro-zero.bin"
# 300 ids < 64 as raw uint16
{ for i in $(seq 0 299); do le16 $((i * 7 % 64)); done; } > "$pool/tokens/micro-raw16.bin"
"$anetrain" train --model "$pool/micro-zero.bin" --scratch --data "$pool/tokens/micro-raw16.bin" --steps 1 \
    --accum 1 --seq 8 --ckpt "$pool/ckpt.bin" --quiet
rm -f "$pool/ckpt.best.bin"
"$anetrain" export --model "$pool/ckpt.bin" -o "$pool/micro-v0.bin" --version 0 > /dev/null
"$anetrain" export --model "$pool/ckpt.bin" -o "$pool/micro-v1.bin" --version 1 > /dev/null
# a LoRA checkpoint (adapters and the base's reference in its header)
"$anetrain" train --model "$pool/micro-v0.bin" --lora 2 --data "$pool/tokens/micro-raw16.bin" --steps 1 \
    --accum 1 --seq 8 --eval-every 0 --ckpt "$pool/ckpt-lora.bin" --quiet
if "$anetrain" export --model "$pool/ckpt.bin" --format hf -o "$pool/hf" > /dev/null 2>"$work/hf.err"; then
    # a one-shard index over the same tensors, for the sharded loader
    n=$(od -An -tu8 -N8 "$pool/hf/model.safetensors" | tr -d ' ')
    names=$(dd if="$pool/hf/model.safetensors" bs=1 skip=8 count="$n" 2>/dev/null |
            grep -o '"[^"]*":{"dtype"' | sed 's/:{"dtype"$//')
    { printf '{"metadata": {"total_size": %d}, "weight_map": {' "$(($(wc -c < "$pool/hf/model.safetensors") - 8 - n))"
      sep=""; for t in $names; do printf '%s%s: "shard1.safetensors"' "$sep" "$t"; sep=", "; done
      printf '}}\n'; } > "$work/index.json"
    bundle "$pool/hf/config.json" "$work/index.json" "$pool/hf/model.safetensors" > "$pool/hf-index/micro.bundle"
else
    say "no Hugging Face seeds: $(cat "$work/hf.err")"
fi
# f16 and bf16 tensors (anetrain exports F32 only); the header is padded to 8 bytes
hdr='{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},"__metadata__":{"format":"pt"}}'
while [ $((${#hdr} % 8)) -ne 0 ]; do hdr="$hdr "; done
{ le64 ${#hdr}; printf '%s' "$hdr"; printf '\x00\x3c\x00\xc0\x01\x00\xff\x7b\x80\x3f\x80\xbf\x80\x7f'; } > "$pool/halves.safetensors"

# --- tokenizers and token files ----------------------------------------------------------
"$anetrain" train --steps 1 --accum 1 --seq 8 --out-dir "$work/builtin" --ckpt "$work/builtin/ckpt.bin" --quiet
cp "$work/builtin/tokenizer.bin" "$pool/builtin-tokenizer.bin"
# a real --log (every record type a short run writes), for fuzz_dash_log
"$anetrain" train --steps 4 --accum 1 --seq 8 --eval-every 2 --out-dir "$work/builtin" --ckpt "$work/log/ckpt.bin" \
    --log "$pool/train-log.jsonl" --quiet
if [ -f "$pool/tok512.bin" ] && [ -f "$data/tinystories/TinyStories-validation.head.txt" ]; then
    head -n 3 "$data/tinystories/TinyStories-validation.head.txt" > "$work/story.txt"
    "$anetrain" tokenize --tokenizer "$pool/tok512.bin" --vocab 512 -o "$pool/tokens/story-tok512.bin" \
        "$work/story.txt" > /dev/null
fi
{ printf 'ANTK'; le32 1; le32 4; le32 100000; le64 16; le64 0
  for i in $(seq 1 16); do le32 $((i * 6247)); done; } > "$pool/tokens/antk32.bin"
{ printf 'ANTK'; le32 1; le32 2; le32 512; le64 16; le64 0
  for i in $(seq 1 16); do le16 $((i * 31)); done; } > "$pool/tokens/antk16.bin"
# llm.c shards: int32[256] header {magic, version, count}, then the ids
{ le32 20240520; le32 1; le32 32; head -c $((253 * 4)) /dev/zero
  for i in $(seq 1 32); do le16 $((i * 13)); done; } > "$pool/tokens/llmc16.bin"
{ le32 20240801; le32 7; le32 32; head -c $((253 * 4)) /dev/zero
  for i in $(seq 1 32); do le32 $((i * 13)); done; } > "$pool/tokens/llmc32.bin"

# Hugging Face tokenizers: the tiny one cut from Qwen3's (tests/fixtures/hf_tiny), whole
# and as a vocab.json + merges.txt + tokenizer_config.json + text bundle
mkdir -p "$pool/hf-tokenizer"
if [ -f tests/fixtures/hf_tiny/tokenizer.json ]; then
    cp tests/fixtures/hf_tiny/tokenizer.json "$pool/hf-tokenizer/tiny-tokenizer.json"
    printf 'Hello world<|endoftext|> caf\xc3\xa9 \xe6\x88\x91\r\n  12 \xff' > "$work/hf-text.txt"
    bundle tests/fixtures/hf_tiny/vocab.json tests/fixtures/hf_tiny/merges.txt \
        tests/fixtures/hf_tiny/tokenizer_config.json "$work/hf-text.txt" > "$pool/hf-tokenizer/tiny.bundle"
fi

# --- the original trainer's checkpoints (96-byte header, then 12 bytes a parameter) ------------
# orig VERSION STEP TOTAL L V D H NH S ADAM_T KV HD PARAMS
orig() {
    le32 0x424C5A54; le32 "$1"; le32 "$2"; le32 "$3"; le32 "$4"; le32 "$5"; le32 "$6"; le32 "$7"; le32 "$8"; le32 "$9"
    le32 0x38d1b717; le32 0x40400000   # lr 1e-4, loss 3.0
    head -c 24 /dev/zero               # cum_compile, cum_train, cum_wall (double)
    le32 20; le32 2; le32 "${10}"      # cum_steps, cum_batches, adam_t
    if [ "$1" = 4 ]; then le32 "${11}"; le32 "${12}"; le32 $(($8 * ${12})); else head -c 12 /dev/zero; fi
    head -c $((12 * ${13})) /dev/zero
}
orig 2 20 100 1 64 16 32 2 16 2 2 8 3632 > "$pool/orig-v2.bin"
orig 4 20 100 1 64 16 32 2 16 2 1 8 3376 > "$pool/orig-v4.bin"

# --- MIL: every kernel of the micro model, both dialects; ios18 with its blobs ------------
kernels="sdpaFwd woFwd ffnFused ffnBwdW2t ffnBwdW13t wotBwd sdpaBwd1 sdpaBwd2 qBwd kvBwd"  # `anetrain mil --help`
# the static pipelines' kernels (ios18 only; their blobs from random weights)
static_kernels="fwdAttn fwdFFN ffnBwd woSdpaBwd1 qkvBwd rmsnormBwd finalNorm classifier vocabSoftmax"
for k in $kernels $static_kernels; do
    case " $static_kernels " in *" $k "*) ;; *)
        "$anetrain" mil "$k" --model "$pool/micro-zero.bin" --seq 8 --dialect ios16 > "$pool/mil/$k.ios16.mil" 2>/dev/null
    esac
    "$anetrain" mil "$k" --model "$pool/micro-zero.bin" --seq 8 --blobs "$work/blobs-$k" \
        > "$pool/mil/$k.mil" 2>/dev/null
    files=("$pool/mil/$k.mil")
    for p in $(grep -o 'BLOBFILE(path=string("[^"]*"' "$pool/mil/$k.mil" | sed 's/^BLOBFILE(path=string("//; s/"$//' |
               awk '!seen[$0]++'); do
        files+=("$work/blobs-$k/${p##*/}")
    done
    bundle "${files[@]}" > "$pool/mil-exec/$k.bundle"
done

# --- each harness's seeds -------------------------------------------------------------------
for t in "$@"; do
    mkdir -p "$fuzz_dir/seeds/$t"
    globs=$(sed -n 's|^// seeds:||p' "fuzz/fuzz_$t.c")
    n=0
    for g in $globs; do
        for f in "$pool"/$g; do
            [ -f "$f" ] || continue
            rel=${f#"$pool"/}
            cp "$f" "$fuzz_dir/seeds/$t/${rel//\//_}"
            n=$((n + 1))
        done
    done
    say "$t: $n files"
    [ "$n" -gt 0 ] || say "WARNING: no seeds for $t (its '// seeds:' line: $globs)"
done
