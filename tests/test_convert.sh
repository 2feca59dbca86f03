#!/bin/bash
# safetensors and Hugging Face checkpoints as GGUF snapshots. The generator writes the same
# weights as a GGUF (what convert_hf_to_gguf.py writes, with general.alignment 4096) and as a HF
# directory; the snapshot of the directory must hold the same keys (values compared, any order),
# tensors (names, types, shapes, bytes) and tokenizer arrays, and in fact be byte-identical.
# Covers llama and qwen2, both vocabularies, f32/f16/bf16, tied and untied, 1 to 3 shards, plain,
# seekable-zstd and single-frame-zstd shards, real weights (stories260K), lone safetensors, the
# handcrafted bad inputs, and llama.cpp on the snapshots when a build is around.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MFS_BIN:-bin}"
PY=/usr/bin/python3
LLAMA_BIN="${MFS_LLAMA_BIN:-../llama.cpp/build/bin}"
work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-convert.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# NAME SHARD-COMPRESSION GEN-OPTIONS...: generate, compress the shards, snapshot, compare
check() {
    local name=$1 comp=$2
    shift 2
    local d="$work/$name"
    $PY scripts/gen-model.py --out "$d.gguf" --hf-dir "$d" --align 4096 --dim 64 --layers 2 --ffn 96 "$@" >/dev/null
    for f in "$d"/*.safetensors; do
        case $comp in
        plain) ;;
        seekable) "$BIN/modelfs-pack" -q --chunk 64K "$f" "$f.zst" && rm "$f" ;;
        single) zstd -q --rm "$f" ;;
        esac
    done
    "$BIN/modelfs-inspect" -w "$d.snap" "$d" 2>"$work/err" || fail "$name: $(cat "$work/err")"
    $PY scripts/compare-gguf.py "$d.gguf" "$d.snap" >"$work/cmp" || { cat "$work/cmp"; fail "$name: snapshot differs"; }
    grep -q "byte-identical" "$work/cmp" || { cat "$work/cmp"; fail "$name: same model, but not byte-identical"; }
    echo "ok $name ($comp shards): $(tail -1 "$work/cmp" | sed 's/^[^:]*: //')"
}

check llama-spm-f16 plain
check llama-spm-bf16-tied-2 seekable --type bf16 --tied --shards 2
check llama-gpt2-f32-3 single --vocab gpt-2 --type f32 --shards 3
check llama-gqa-f16 plain --heads 8 --kv-heads 2 --dim 128 --seed 3
check qwen2-gpt2-f16 plain --arch qwen2 --vocab gpt-2
check qwen2-spm-bf16-tied-2 seekable --arch qwen2 --type bf16 --tied --shards 2
$PY scripts/gen-model.py --out "$work/s260.gguf" --hf-dir "$work/s260" --align 4096 --type f32 \
    --llama2c "${MFS_SHARED_DATA:-../shared/data}/stories260K.bin" >/dev/null
"$BIN/modelfs-inspect" -w "$work/s260.snap" "$work/s260"
cmp "$work/s260.gguf" "$work/s260.snap" || fail "stories260K: snapshot differs"
echo "ok stories260K weights (llama2.c, tied, synthetic vocab)"

# -o align=32 (the GGUF default): the same bytes as convert without general.alignment
$PY scripts/gen-model.py --out "$work/a32.gguf" --hf-dir "$work/a32" --dim 64 --layers 1 --ffn 96 >/dev/null
"$BIN/modelfs-inspect" -a 32 -w "$work/a32.snap" "$work/a32"
cmp "$work/a32.gguf" "$work/a32.snap" || fail "align 32: snapshot differs"
echo "ok alignment 32"

# the format line and notes
"$BIN/modelfs-inspect" "$work/llama-spm-bf16-tied-2" >"$work/out"
grep -q "^format = Hugging Face checkpoint (LlamaForCausalLM, 2 shards)$" "$work/out" || fail "format line"
grep -q "^note = model-00001-of-00002.safetensors.zst: zstd seekable, " "$work/out" || fail "shard note"

# lone safetensors, plain and packed: the GGUF's tensors under their own names
$PY scripts/gen-model.py --out "$work/lone.gguf" --safetensors "$work/lone.safetensors" --type bf16 >/dev/null
"$BIN/modelfs-pack" -q "$work/lone.safetensors" "$work/lone.safetensors.zst"
for f in lone.safetensors lone.safetensors.zst; do
    "$BIN/modelfs-inspect" -w "$work/$f.snap" "$work/$f"
    $PY scripts/compare-gguf.py --tensors-only "$work/lone.gguf" "$work/$f.snap" >/dev/null || fail "$f: tensors differ"
    "$BIN/modelfs-inspect" "$work/$f" >"$work/out"
    grep -q '^general.architecture = "unknown"$' "$work/out" || fail "$f: architecture"
    grep -q '^safetensors.format = "pt"$' "$work/out" || fail "$f: __metadata__"
    grep -q '^alignment = 4096$' "$work/out" || fail "$f: alignment"
done
echo "ok lone safetensors (plain and zstd)"

# bad inputs: one line on stderr naming the source and the reason, exit 1; the rest open
while IFS=$'\t' read -r name want; do
    set +e
    (cd tests/data/corrupt-convert && "../../../$BIN/modelfs-inspect" "$name") >/dev/null 2>"$work/err"
    rc=$?
    set -e
    if [ "$want" = OK ]; then
        [ $rc -eq 0 ] || fail "$name: $(cat "$work/err")"
    else
        [ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && [ "$(cat "$work/err")" = "modelfs-inspect: $want" ] ||
            fail "$name: exit $rc, stderr: $(cat "$work/err")"
    fi
done <tests/data/corrupt-convert/expected.txt
"$BIN/modelfs-inspect" tests/data/corrupt-convert/hf-unknown-arch >"$work/out" 2>"$work/err"
grep -q "^encoder/embed  *BF16 " "$work/out" || fail "unknown architecture: own tensor names"
grep -q "llama.cpp will not run this snapshot" "$work/err" || fail "unknown architecture: no log line"
echo "ok bad inputs ($(wc -l <tests/data/corrupt-convert/expected.txt) handcrafted)"

# llama.cpp on the snapshots: the same text as from the generator's GGUF, with each vocabulary
if [ -x "$LLAMA_BIN/llama-simple" ]; then
    for name in llama-spm-f16 llama-gpt2-f32-3 qwen2-gpt2-f16; do
        for m in "$work/$name.gguf" "$work/$name.snap"; do
            LD_LIBRARY_PATH="$LLAMA_BIN" timeout 120 "$LLAMA_BIN/llama-simple" -m "$m" -n 12 "Once upon a time" \
                2>/dev/null >"$m.txt" || fail "llama-simple failed on $m"
        done
        cmp -s "$work/$name.gguf.txt" "$work/$name.snap.txt" || fail "$name: llama.cpp output differs"
        [ -s "$work/$name.snap.txt" ] || fail "$name: no output"
    done
    echo "ok llama.cpp generates the same text from snapshots and GGUFs"
    data="${MFS_SHARED_DATA:-../shared/data}"
    $PY scripts/check-tokenize.py "$LLAMA_BIN" "$work/llama-spm-f16.snap" "$data/ggml-vocab-llama-spm.gguf.inp" \
        "$data/ggml-vocab-llama-spm.gguf.out" >"$work/tok" || { cat "$work/tok"; fail "llama-spm: tokenization"; }
    $PY scripts/check-tokenize.py "$LLAMA_BIN" "$work/llama-gpt2-f32-3.snap" "$data/ggml-vocab-gpt-2.gguf.inp" \
        "$data/ggml-vocab-gpt-2.gguf.out" >>"$work/tok" || { cat "$work/tok"; fail "gpt-2: tokenization"; }
    echo "ok llama.cpp tokenizes the reference suites with both snapshots' vocabularies"
else
    echo "skip llama.cpp checks: no $LLAMA_BIN/llama-simple (set MFS_LLAMA_BIN)"
fi
echo "all conversion tests passed"
