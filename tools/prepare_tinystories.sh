#!/usr/bin/env bash
# TinyStories text -> token files for `anetrain train`, as the original
# trainer's download_data.sh step: download with curl, verify the sha256,
# tokenize with the chosen tokenizer (train and validation).
#
#   bash tools/prepare_tinystories.sh [--tokenizer PATH] [--out DIR] [--max-bytes N]
#       [--train-url URL --train-sha256 HEX] [--val-url URL --val-sha256 HEX]
#
#   --tokenizer  a llama2.c tokenizer.bin or a Hugging Face tokenizer (directory or
#                file); default ../shared/data/qwen3-0.6b (Qwen3's)
#   --out        where the text and token files go (default data/tinystories)
#   --max-bytes  after verification, keep the first N bytes of each text, cut at
#                the last story end (quick experiments); 0 = all (default)
#   URLs         default: the TinyStories V1 text files on the Hugging Face hub
#                (TinyStories-train.txt 1.9 GB, TinyStories-valid.txt 19 MB); any
#                curl URL works, file:// included (how the tests run it offline)
#   sha256       default for huggingface.co URLs: the file's LFS object id, which
#                the hub sends as X-Linked-Etag (the sha256 of the content);
#                other URLs need one given, or --no-verify
#
# Writes OUT/train.full.txt, OUT/val.full.txt (as downloaded and verified, kept
# for reuse: a second run with the same checksums downloads nothing), OUT/train.txt,
# OUT/val.txt (the same, or their --max-bytes heads) and OUT/train.bin, OUT/val.bin via
# `anetrain tokenize` (documents after the tokenizer's separator: BOS for
# llama2.c, <|endoftext|> for Qwen). ANETRAIN names the binary (default ./anetrain).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hub=https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main
tokenizer=$root/../shared/data/qwen3-0.6b out=data/tinystories max_bytes=0 verify=1
train_url=$hub/TinyStories-train.txt val_url=$hub/TinyStories-valid.txt train_sha="" val_sha=""
anetrain=${ANETRAIN:-$root/anetrain}
die() { echo "prepare_tinystories: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
        --tokenizer) tokenizer=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --max-bytes) max_bytes=$2; shift 2 ;;
        --train-url) train_url=$2; shift 2 ;;
        --val-url) val_url=$2; shift 2 ;;
        --train-sha256) train_sha=$2; shift 2 ;;
        --val-sha256) val_sha=$2; shift 2 ;;
        --no-verify) verify=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
command -v curl > /dev/null || die "curl is not installed (apt-get install curl)"
[ -x "$anetrain" ] || die "$anetrain is not built (make, or ANETRAIN=path)"
mkdir -p "$out"

# expected_sha URL GIVEN: the checksum to verify against
expected_sha() {
    if [ -n "$2" ]; then echo "$2"; return; fi
    [ $verify = 1 ] || return 0
    case $1 in
        https://huggingface.co/*)
            curl -fsSIL "$1" | tr -d '\r' | sed -n 's/^x-linked-etag: *"\{0,1\}\([0-9a-f]\{64\}\)"\{0,1\}$/\1/Ip' | tail -n 1 ;;
    esac
}

# fetch URL SHA DEST: download to DEST.part, verify, rename (a bad download never
# takes DEST's place); an existing DEST with the right checksum is kept
fetch() {
    local url=$1 sha=$2 dest=$3 got
    if [ -n "$sha" ] && [ -f "$dest" ] && [ "$(sha256sum < "$dest" | cut -d' ' -f1)" = "$sha" ]; then
        echo "$dest: present, sha256 verified"; return
    fi
    [ $verify = 0 ] || [ -n "$sha" ] || die "$url: no sha256 to verify against (give one, or --no-verify)"
    echo "downloading $url"
    curl -fL --retry 3 $([ -t 2 ] && echo --progress-bar || echo -sS) -o "$dest.part" "$url" || { rm -f "$dest.part"; die "$url: download failed"; }
    got=$(sha256sum < "$dest.part" | cut -d' ' -f1)
    if [ $verify = 1 ] && [ "$got" != "$sha" ]; then
        rm -f "$dest.part"
        die "$url: expected sha256 $sha, found $got (a corrupted or different file)"
    fi
    mv "$dest.part" "$dest"
    echo "$dest: $(wc -c < "$dest") bytes, sha256 ${got}$([ $verify = 1 ] && echo ' verified')"
}

# cut FILE N: the first N bytes, up to the last <|endoftext|> line or blank line in them
cut_text() {
    local f=$1 n=$2
    head -c "$n" "$f" | awk '{ buf = buf $0 "\n"; if ($0 == "<|endoftext|>" || $0 == "") { printf "%s", buf; buf = "" } }' \
        > "$f.cut"
    mv "$f.cut" "$f"
}

for split in train val; do
    if [ $split = train ]; then url=$train_url sha=$train_sha; else url=$val_url sha=$val_sha; fi
    sha=$(expected_sha "$url" "$sha")
    fetch "$url" "$sha" "$out/$split.full.txt"
    cp "$out/$split.full.txt" "$out/$split.txt"
    [ "$max_bytes" = 0 ] || cut_text "$out/$split.txt" "$max_bytes"
    "$anetrain" tokenize --tokenizer "$tokenizer" -o "$out/$split.bin" "$out/$split.txt" | tail -n 1
done
echo "train with: $anetrain train --data $out/train.bin --val-data $out/val.bin ..."
