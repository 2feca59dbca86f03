#!/bin/bash
# modelfs-pack and modelfs-inspect on generated models of every type: stock zstd restores the
# packed bytes, inspect shows the same tensor table for a file and its packed copy, exit codes
# and messages follow the contract, and an interrupted pack leaves no OUT behind.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MFS_BIN:-bin}"
work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-tools.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for type in f32 f16 bf16 q8_0 q4_0; do
    m="$work/m-$type.gguf"
    /usr/bin/python3 scripts/gen-model.py --out "$m" --type "$type" --dim 64 --layers 2 --heads 4 --kv-heads 2 \
        --ffn 96 --seed 7 >/dev/null
    "$BIN/modelfs-pack" -q --chunk 64K "$m" "$m.zst"
    zstd -q -d -c "$m.zst" | cmp - "$m" || fail "$type: zstd -d does not restore the original"
    "$BIN/modelfs-inspect" "$m" | sed -n '/^\[tensors\]/,$p' >"$work/plain.txt"
    "$BIN/modelfs-inspect" "$m.zst" | sed -n '/^\[tensors\]/,$p' >"$work/packed.txt"
    cmp "$work/plain.txt" "$work/packed.txt" || fail "$type: tensor tables differ"
    [ "$(grep -c . "$work/plain.txt")" -gt 10 ] || fail "$type: no tensor table"
    "$BIN/modelfs-inspect" "$m.zst" >"$work/out"
    grep -q "^compression = zstd seekable, .* frames, XXH64 checksums$" "$work/out" || fail "$type: no frames shown"
    echo "ok $type"
done

# --verify, --frames, other zstd layouts
m="$work/m-f16.gguf"
"$BIN/modelfs-pack" -q -f --verify -l 5 -T 1 --chunk 32K "$m" "$m.zst"
"$BIN/modelfs-inspect" --frames "$m.zst" >"$work/out"
grep -q '^\[frames\]' "$work/out" || fail "--frames"
zstd -q -T0 -c "$m" >"$work/single.zst"
"$BIN/modelfs-inspect" "$work/single.zst" >"$work/out"
grep -q "^compression = zstd single-frame, 1 frames" "$work/out" || fail "single frame"
grep -q "note = single-frame zstd has no random access" "$work/out" || fail "note"
pzstd -q -p 2 -c "$m" >"$work/multi.zst"
"$BIN/modelfs-inspect" "$work/multi.zst" >"$work/out"
grep -q "^compression = zstd multi-frame" "$work/out" || fail "pzstd frames"

# re-layout: every tensor offset a multiple of 4096
"$BIN/modelfs-inspect" --align 4096 "$m" | awk '/^\[tensors\]/ {t = 1; getline; next} t && NF == 0 {t = 0}
    t { if ($(NF - 1) % 4096 != 0) { print "misaligned: " $0; bad = 1 } } END { exit bad }' || fail "align"

# exit codes: 0 help/version, 2 usage, 1 bad input with one line naming the file
"$BIN/modelfs-pack" --help >"$work/out" && grep -q "^Usage: modelfs-pack" "$work/out" || fail "pack --help"
"$BIN/modelfs-inspect" --version >"$work/out" && grep -q "^modelfs-inspect " "$work/out" || fail "inspect --version"
set +e
"$BIN/modelfs-pack" 2>/dev/null; [ $? -eq 2 ] || fail "pack without args must exit 2"
"$BIN/modelfs-pack" --level 99 a b 2>/dev/null; [ $? -eq 2 ] || fail "bad level must exit 2"
"$BIN/modelfs-inspect" --bogus 2>/dev/null; [ $? -eq 2 ] || fail "bad option must exit 2"
"$BIN/modelfs-pack" -q "$m" "$m.zst" 2>"$work/err"; rc=$?
[ $rc -eq 1 ] && grep -q "already exists" "$work/err" || fail "pack must refuse to overwrite without -f"
"$BIN/modelfs-pack" -q "$work/missing.gguf" "$work/x.zst" 2>"$work/err"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "missing.gguf" "$work/err" || fail "missing input"
"$BIN/modelfs-inspect" tests/data/corrupt/tensors-overlap.gguf 2>"$work/err"; rc=$?
[ $rc -eq 1 ] && [ "$(cat "$work/err")" = "modelfs-inspect: tests/data/corrupt/tensors-overlap.gguf: tensors 'a' and 'b' overlap" ] ||
    fail "inspect of a corrupt file: $(cat "$work/err")"
set -e

# an interrupted pack leaves no OUT (and no temporary file)
head -c 200000000 /dev/urandom >"$work/big.bin"
"$BIN/modelfs-pack" -q -l 19 -T 1 "$work/big.bin" "$work/big.zst" &
pid=$!
sleep 0.5
kill -KILL $pid
wait $pid 2>/dev/null || true
[ ! -e "$work/big.zst" ] || fail "an interrupted pack left OUT"
echo "all tool tests passed"
