#!/bin/bash
# Concurrency (issue 3, item 3): 8 threads doing random preads for 30 s over a plain, a packed
# (seekable, 256 KiB frames), a multi-frame and a single-frame model (half of them O_DIRECT, page cache dropped now and then, so the daemon
# keeps serving, with a cache budget far below the models) all match the originals; the daemon
# stays up. Also the test to run under SANITIZER=thread and SANITIZER=address,undefined builds.
# MFS_STRESS_SECONDS overrides the duration.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S" "$T/orig"
gen "$T/orig/plain.gguf" --seed 41
gen "$T/orig/multi.gguf" --seed 42 --dim 128 --ffn 344 --layers 4
gen "$T/orig/single.gguf" --seed 43 --dim 32
gen "$T/orig/packed.gguf" --seed 44 --dim 128 --ffn 344 --layers 3
"$MFS_BIN/modelfs-pack" --chunk 256K "$T/orig/packed.gguf" "$S/packed.gguf.zst" 2>/dev/null || fail "modelfs-pack"
cp "$T/orig/plain.gguf" "$S/plain.gguf"
zstd_frames "$T/orig/multi.gguf" "$S/multi.gguf.zst" 524288
rm "$S/multi.gguf.zst.frames"
zstd -q -T0 "$T/orig/single.gguf" -o "$S/single.gguf.zst"
mount_fs "$S" "$M" -o cache=4M,threads=2,max_threads=16

secs=${MFS_STRESS_SECONDS:-30}
timeout $((secs + 60)) "$HELPERS/preadcheck" -t 8 -s "$secs" -D \
    "$M/plain.gguf=$T/orig/plain.gguf" "$M/multi.gguf=$T/orig/multi.gguf" "$M/single.gguf=$T/orig/single.gguf" \
    "$M/packed.gguf=$T/orig/packed.gguf" \
    >"$T/out" || { cat "$T/out"; fail "random preads mismatched"; }
alive "$DAEMON_PID" || fail "daemon died"
ok "$(cat "$T/out") in ${secs}s; daemon: $(stat_of "$M" read_requests) read requests, $(stat_of "$M" cache_misses) cache misses"
for m in plain multi single packed; do
    [ "$(sha "$M/$m.gguf")" = "$(sha "$T/orig/$m.gguf")" ] || fail "$m.gguf after the stress"
done
ok "models byte-exact after the stress"
umount_fs "$M" "$DAEMON_PID"
