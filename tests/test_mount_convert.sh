#!/bin/bash
# Converted models through a real mount (issue 4): Hugging Face directories (llama with the
# SentencePiece vocab in two packed shards, qwen2 with the gpt-2 vocab) appear as DIR.gguf beside
# DIR/, with the sha256 of the GGUF the generator (= convert_hf_to_gguf.py) writes, the same bytes
# through mmap, DIR.tensors/ and DIR.meta right; a lone safetensors appears as NAME.gguf; an
# unknown architecture mounts with its own tensor names; a checkpoint with a missing shard is
# passed through with one log line; llama.cpp and modelfs-run generate the same text from the
# mounted files as from the GGUFs.
source "$(dirname "$0")/lib/mount.sh"
LLAMA_BIN="${MFS_LLAMA_BIN:-$ROOT/../llama.cpp/build/bin}"

S=$T/src M=$T/mnt
mkdir -p "$S" "$T/orig"
gen "$T/orig/llama.gguf" --hf-dir "$S/llama" --shards 2 --align 4096 --type bf16 --dim 64 --layers 2 --ffn 96
for f in "$S"/llama/*.safetensors; do
    "$MFS_BIN/modelfs-pack" -q --chunk 64K "$f" "$f.zst" && rm "$f"
done
gen "$T/orig/qwen.gguf" --hf-dir "$S/qwen" --arch qwen2 --vocab gpt-2 --align 4096 --dim 64 --layers 2 --ffn 96
gen "$T/orig/lone-src.gguf" --safetensors "$S/lone.safetensors" --dim 32 --layers 1 --ffn 64
"$MFS_BIN/modelfs-inspect" -w "$T/orig/lone.gguf" "$S/lone.safetensors"
cp -r "$ROOT/tests/data/corrupt-convert/hf-unknown-arch" "$S/foo"
"$MFS_BIN/modelfs-inspect" -w "$T/orig/foo.gguf" "$S/foo" 2>/dev/null
cp -r "$ROOT/tests/data/corrupt-convert/hf-missing-shard" "$S/broken"

mount_fs "$S" "$M"

got=$(cd "$M" && ls -A | tr '\n' ' ')
want=".modelfs broken foo foo.gguf foo.meta foo.tensors llama llama.gguf llama.meta llama.tensors lone.gguf lone.meta lone.tensors qwen qwen.gguf qwen.meta qwen.tensors "
[ "$got" = "$want" ] || fail "listing: got '$got', want '$want'"
ok "listing: DIR.gguf beside DIR/, the broken checkpoint only as its directory"

for m in llama qwen lone foo; do
    want=$(sha "$T/orig/$m.gguf")
    [ "$(sha "$M/$m.gguf")" = "$want" ] || fail "$m.gguf: sha256 differs from the converted GGUF"
    [ "$(timeout 60 "$HELPERS/mapread" "$M/$m.gguf" | sha256sum | cut -d' ' -f1)" = "$want" ] ||
        fail "$m.gguf: mmap(MAP_POPULATE) bytes differ"
    timeout 120 $PY "$ROOT/tests/lib/check_view.py" "$M" "$m" "$T/orig/$m.gguf" || fail "$m: views"
    ok "$m.gguf: sha256, mmap, $(ls "$M/$m.tensors" | wc -l) tensor files, xattrs, meta"
done
grep -q "^format = Hugging Face checkpoint (LlamaForCausalLM, 2 shards)$" "$M/llama.meta" || fail "llama.meta: format"
[ -e "$M/foo.tensors/encoder%2Fembed" ] || fail "foo: escaped tensor name"
grep -q "broken.*shard model-00002-of-00002.safetensors (named in model.safetensors.index.json) is missing" \
    "$T/daemon.log" || fail "no log line for the missing shard"
[ "$(sha "$M/broken/config.json")" = "$(sha "$S/broken/config.json")" ] || fail "broken/ not passed through"
ok "unknown architecture shown with its names; missing shard logged, directory passed through"

if [ -x "$LLAMA_BIN/llama-simple" ]; then
    for m in llama qwen; do
        LD_LIBRARY_PATH="$LLAMA_BIN" timeout 120 "$LLAMA_BIN/llama-simple" -m "$T/orig/$m.gguf" -n 8 "Once upon a time" \
            2>/dev/null >"$T/$m.want" || fail "llama-simple on $m.gguf"
        LD_LIBRARY_PATH="$LLAMA_BIN" timeout 120 "$LLAMA_BIN/llama-simple" -m "$M/$m.gguf" -n 8 "Once upon a time" \
            2>/dev/null >"$T/$m.got" || fail "llama-simple on the mounted $m.gguf"
        cmp -s "$T/$m.want" "$T/$m.got" || fail "$m: llama.cpp output differs through the mount"
    done
    ok "llama.cpp generates the same text from the mounted snapshots"
fi
if [ -x "$MFS_BIN/modelfs-run" ]; then
    for m in llama qwen; do
        timeout 120 "$MFS_BIN/modelfs-run" -m "$T/orig/$m.gguf" -p "Once upon a time" -n 12 --temp 0 -t 1 \
            2>/dev/null >"$T/$m.run-want" || fail "modelfs-run on $m.gguf"
        timeout 120 "$MFS_BIN/modelfs-run" -m "$M/$m.gguf" -p "Once upon a time" -n 12 --temp 0 -t 1 \
            2>/dev/null >"$T/$m.run-got" || fail "modelfs-run on the mounted $m.gguf"
        cmp -s "$T/$m.run-want" "$T/$m.run-got" || fail "$m: modelfs-run output differs through the mount"
        [ -s "$T/$m.run-got" ] || fail "$m: modelfs-run wrote nothing"
    done
    ok "modelfs-run generates the same tokens from the mounted snapshots"
fi
umount_fs "$M" "$DAEMON_PID"
ok "unmounted cleanly"
