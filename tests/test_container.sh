#!/bin/bash
# modelfs-pack's tensor-aware container on generated models of every type and on real weights
# (stories260K converted to each float type): it is the default for GGUF and safetensors inputs,
# `--verify` decodes it back to the same bytes (no zstd CLI involved), it is smaller than seekable
# zstd, modelfs-inspect shows the same tensor table as for the plain GGUF plus per-tensor codecs,
# and bad inputs and corrupt containers fail with one clear line.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MFS_BIN:-bin}"
DATA="${MFS_SHARED_DATA:-../shared/data}"
work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-container.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

tensor_table() { "$BIN/modelfs-inspect" "$1" | sed -n '/^\[tensors\]/,/^$/p'; }

# packed size of $1 as .mfz and as seekable .zst, both verified
pack_both() {
    "$BIN/modelfs-pack" -q -f --verify "$1" "$1.mfz"
    "$BIN/modelfs-pack" -q -f --verify "$1" "$1.zst"
    echo "$(stat -c %s "$1") $(stat -c %s "$1.mfz") $(stat -c %s "$1.zst")"
}

declare -A codec=([f32]=f32-planes [f16]=f16-nibbles [bf16]=bf16-nibbles [q8_0]=fields [q4_0]=fields)
for type in f32 f16 bf16 q8_0 q4_0; do
    m="$work/m-$type.gguf"
    /usr/bin/python3 scripts/gen-model.py --out "$m" --type "$type" --dim 128 --layers 2 --heads 4 --kv-heads 2 \
        --ffn 256 --seed 11 >/dev/null
    read -r size mfz zst < <(pack_both "$m")
    "$BIN/modelfs-inspect" "$m.mfz" >"$work/out"
    grep -q "^compression = modelfs container, [0-9]* frames, XXH3-64 checksums$" "$work/out" ||
        fail "$type: not packed as a container by default"
    [ "$(tensor_table "$m")" = "$(tensor_table "$m.mfz")" ] || fail "$type: tensor tables differ"
    n=$(sed -n 's/^\[tensors\] //p' "$work/out")
    [ "$(sed -n 's/^\[codecs\] //p' "$work/out")" = "$n" ] || fail "$type: [codecs] does not list every tensor"
    grep -Eq "^blk\.0\.ffn_up\.weight +${codec[$type]}" "$work/out" || fail "$type: ffn_up is not ${codec[$type]}"
    [ "$mfz" -lt "$zst" ] || fail "$type: container ($mfz bytes) is not smaller than seekable zstd ($zst)"
    echo "ok $type: container $(awk -v a="$mfz" -v b="$size" 'BEGIN { printf "%.3f", a / b }')," \
        "seekable zstd $(awk -v a="$zst" -v b="$size" 'BEGIN { printf "%.3f", a / b }')"
done

# real trained weights
if [ -f "$DATA/stories260K.bin" ]; then
    for type in f32 f16 bf16; do
        m="$work/s-$type.gguf"
        /usr/bin/python3 scripts/gen-model.py --llama2c "$DATA/stories260K.bin" --out "$m" --type "$type" >/dev/null
        read -r size mfz zst < <(pack_both "$m")
        [ "$mfz" -lt "$zst" ] || fail "stories260K $type: container not smaller than seekable zstd"
        echo "ok stories260K $type: container $(awk -v a="$mfz" -v b="$size" 'BEGIN { printf "%.3f", a / b }')," \
            "seekable zstd $(awk -v a="$zst" -v b="$size" 'BEGIN { printf "%.3f", a / b }')"
    done
else
    echo "skip: no $DATA/stories260K.bin"
fi

# safetensors: packed per tensor, restored exactly
m="$work/m-bf16.gguf"
/usr/bin/python3 scripts/gen-model.py --out "$work/st.gguf" --type bf16 --dim 64 --layers 1 --heads 4 --kv-heads 2 \
    --ffn 128 --safetensors "$work/st.safetensors" >/dev/null
"$BIN/modelfs-pack" -q --verify "$work/st.safetensors" "$work/st.safetensors.mfz"
head -c 8 "$work/st.safetensors.mfz" | od -An -tx1 | grep -q "89 4d 46 5a 0d 0a 1a 0a" || fail "safetensors: no container"

# threads, chunk sizes, --frames
"$BIN/modelfs-pack" -q -f --verify -T 1 --chunk 4K "$m" "$work/c1.mfz"
"$BIN/modelfs-pack" -q -f --verify -T 3 --chunk 1M "$m" "$work/c3.mfz"
"$BIN/modelfs-inspect" --frames "$work/c1.mfz" >"$work/out"
grep -q '^\[frames\]' "$work/out" || fail "--frames"
grep -Eq "^codec bf16-(nibbles|planes) = " "$work/out" || fail "codec totals"

# format choice and messages
"$BIN/modelfs-pack" -q -f "$m" "$work/plain.zst"
"$BIN/modelfs-inspect" "$work/plain.zst" | grep -q "^compression = zstd seekable" || fail "OUT .zst must be zst"
"$BIN/modelfs-pack" -f "$m" "$work/named.bin" 2>"$work/err"
grep -q "does not end in .mfz" "$work/err" || fail "no note about the .mfz extension"
head -c 100000 /dev/urandom >"$work/random.bin"
"$BIN/modelfs-pack" -q "$work/random.bin" "$work/random.out"
head -c 4 "$work/random.out" | od -An -tx1 | grep -q "28 b5 2f fd" || fail "other files must default to zst"
set +e
"$BIN/modelfs-pack" -q --format container "$m" "$work/x.zst" 2>/dev/null; [ $? -eq 2 ] || fail "container into .zst must exit 2"
"$BIN/modelfs-pack" -q --format container "$work/random.bin" "$work/r.mfz" 2>"$work/err"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "random.bin: not a GGUF or safetensors file" "$work/err" ||
    fail "container of a non-model: $(cat "$work/err")"
[ ! -e "$work/r.mfz" ] || fail "a failed pack left OUT"
"$BIN/modelfs-inspect" tests/data/container/bad-version.mfz 2>"$work/err"; rc=$?
[ $rc -eq 1 ] && [ "$(cat "$work/err")" = "modelfs-inspect: tests/data/container/bad-version.mfz: container version 2 is not supported (only 1)" ] ||
    fail "inspect of a corrupt container: $(cat "$work/err")"
"$BIN/modelfs-pack" -q -f --verify tests/data/container/base.gguf "$work/base.mfz"; rc=$?
[ $rc -eq 0 ] || fail "base.gguf"
set -e
echo "all container tests passed"
