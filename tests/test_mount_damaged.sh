#!/bin/bash
# Fault injection (issue 7, item 3): every source format (plain GGUF, seekable zstd, multi-frame
# zstd, single-frame zstd, container, safetensors, a Hugging Face directory's shard) truncated at 20
# points and bit-flipped at 50 (tests/lib/damage.py, fixed seed), 490 damaged sources, cache=16M:
# the daemon stays up; each damaged model is either passed through with its own bytes or served with clean errors (EIO, never other bytes where a checksum can tell, never a
# hang); three healthy models of other formats stay byte-exact throughout; the daemon's peak RSS
# stays within cache + MFS_RSS_SLACK_MB (default 32 MiB). One mount per format.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src B=$T/base
mkdir -p "$S" "$T/orig" "$B"
SEED=${MFS_DAMAGE_SEED:-7}
DATA=${MFS_SHARED_DATA:-$ROOT/../shared/data}
# a ~0.5 MB llama model (the llama2.c stories260K weights, 512-token vocab), in every format
gen "$T/orig/m.gguf" --llama2c "$DATA/stories260K.bin" --hf-dir "$B/hf" --shards 2 --safetensors "$B/m.safetensors"
cp "$T/orig/m.gguf" "$B/m.gguf"
"$MFS_BIN/modelfs-pack" -q --chunk 64K "$T/orig/m.gguf" "$B/m.gguf.zst" || fail "modelfs-pack zst"
"$MFS_BIN/modelfs-pack" -q --chunk 64K --format container "$T/orig/m.gguf" "$B/m.mfz" || fail "modelfs-pack container"
zstd_frames "$T/orig/m.gguf" "$B/frames.gguf.zst" 65536
zstd -q -3 "$T/orig/m.gguf" -o "$B/single.gguf.zst"
declare -A SRC=([gguf]=$B/m.gguf [seekable]=$B/m.gguf.zst [frames]=$B/frames.gguf.zst [single]=$B/single.gguf.zst
    [container]=$B/m.mfz [safetensors]=$B/m.safetensors [hf]=$B/hf)
formats="gguf seekable frames single container safetensors hf"
for f in $formats; do
    $PY "$ROOT/tests/lib/damage.py" make "$f" "${SRC[$f]}" "$S/$f" "$SEED" || fail "damage $f"
done
# the healthy ones, hard-linked into each format's source directory
gen "$T/orig/a.gguf" --seed 71 --dim 32 --layers 1
gen "$T/orig/b.gguf" --seed 72 --dim 32 --layers 1
gen "$T/orig/c.gguf" --seed 73 --dim 32 --layers 1
mkdir -p "$T/good"
cp "$T/orig/a.gguf" "$T/good/a.gguf"
"$MFS_BIN/modelfs-pack" -q "$T/orig/b.gguf" "$T/good/b.gguf.zst" || fail "modelfs-pack b"
"$MFS_BIN/modelfs-pack" -q "$T/orig/c.gguf" "$T/good/c.mfz" || fail "modelfs-pack c"

good_ok() {
    for g in a b c; do
        [ "$(sha "$M/good/$g.gguf")" = "$(sha "$T/orig/$g.gguf")" ] || fail "good/$g.gguf differs $1"
    done
}

# one mount per format (70 damaged sources and the 3 healthy ones), so that the peak RSS measures
# what damage costs, not how many models one mount lists
total=0
limit=$(((16 + ${MFS_RSS_SLACK_MB:-32}) * 1024))
for f in $formats; do
    M=$T/mnt-$f
    cp -al "$T/good" "$S/$f/good"
    mount_fs "$S/$f" "$M" -o cache=16M
    good_ok "before the damaged $f sources are read"
    timeout 300 $PY "$ROOT/tests/lib/damage.py" check "$f" "$M" "$S/$f" "$T/orig/m.gguf" >"$T/check.out" ||
        { cat "$T/check.out"; fail "$f: damaged sources"; }
    alive "$DAEMON_PID" || fail "daemon died on damaged $f sources"
    good_ok "after the damaged $f sources"
    rss_within "$limit" || fail "$f: daemon peak RSS ${HWM} kB over cache=16M + ${MFS_RSS_SLACK_MB:-32} MiB"
    ok "$f: $(cat "$T/check.out"), peak RSS ${HWM} kB"
    umount_fs "$M" "$DAEMON_PID"
    total=$((total + 70))
done
ok "$total damaged sources: daemons up, healthy models byte-exact, peak RSS within cache + ${MFS_RSS_SLACK_MB:-32} MiB"
