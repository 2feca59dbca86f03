#!/bin/bash
# make demo: a first run of modelfs on a small generated model.
# Generates a Llama-architecture model, packs it with modelfs-pack, inspects the packed file,
# and checks that stock zstd restores the original bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MFS_BIN:-bin}"
work=$(mktemp -d "${TMPDIR:-/tmp}/modelfs-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Generate a small Llama model (F16, random weights, LLaMA tokenizer)"
/usr/bin/python3 scripts/gen-model.py --out "$work/demo.gguf" --type f16 --dim 256 --layers 4 --heads 8 \
    --kv-heads 4 --ffn 688 --seed 1
ls -l "$work/demo.gguf"

step "Pack it: zstd seekable format with per-frame checksums"
"$BIN/modelfs-pack" --verify "$work/demo.gguf" "$work/demo.gguf.zst"

step "Inspect the packed file (no mount, no decompression of tensor data)"
"$BIN/modelfs-inspect" "$work/demo.gguf.zst" | sed -n '1,14p;/^\[tensors\]/,+8p'

step "Stock zstd restores the original bytes"
zstd -q -d -c "$work/demo.gguf.zst" | cmp - "$work/demo.gguf" && echo "zstd -d output is identical to demo.gguf"
