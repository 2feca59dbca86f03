#!/bin/bash
# Stress (issues 3 and 7): for 60 s, 16 threads doing random preads (half of them O_DIRECT, page
# cache dropped now and then, so the daemon keeps serving) and 4 processes reading through shared
# mappings (mapped range dropped now and then) over a plain, a packed (seekable, 256 KiB frames), a
# tensor-aware container, a multi-frame and a single-frame model, with a 16 MiB cache budget far
# below the models: zero mismatches, the daemon up, its peak RSS within its budget (the cache, 3 MiB
# per FUSE thread for the request and reply buffers, 16 MiB for the rest), and a
# watchdog (timeout) that fails the test on a deadlock. Also the test to run under
# SANITIZER=thread and SANITIZER=address,undefined builds. MFS_STRESS_SECONDS overrides the
# duration.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S" "$T/orig"
gen "$T/orig/plain.gguf" --seed 41
gen "$T/orig/multi.gguf" --seed 42 --dim 128 --ffn 344 --layers 4
gen "$T/orig/single.gguf" --seed 43 --dim 32
gen "$T/orig/packed.gguf" --seed 44 --dim 128 --ffn 344 --layers 3
gen "$T/orig/cont.gguf" --seed 45 --dim 128 --ffn 344 --layers 3
"$MFS_BIN/modelfs-pack" --format zst --chunk 256K "$T/orig/packed.gguf" "$S/packed.gguf.zst" 2>/dev/null || fail "modelfs-pack"
"$MFS_BIN/modelfs-pack" "$T/orig/cont.gguf" "$S/cont.mfz" 2>/dev/null || fail "modelfs-pack (container)"
cp "$T/orig/plain.gguf" "$S/plain.gguf"
zstd_frames "$T/orig/multi.gguf" "$S/multi.gguf.zst" 524288
rm "$S/multi.gguf.zst.frames"
zstd -q -T0 "$T/orig/single.gguf" -o "$S/single.gguf.zst"
mount_fs "$S" "$M" -o cache=16M,threads=2,max_threads=16

secs=${MFS_STRESS_SECONDS:-60}
pairs=()
for m in plain multi single packed cont; do pairs+=("$M/$m.gguf=$T/orig/$m.gguf"); done
pids=()
for p in 1 2 3 4; do
    timeout $((secs + 60)) "$HELPERS/preadcheck" -M -D -t 2 -s "$secs" "${pairs[@]}" >"$T/map.$p" 2>&1 &
    pids+=($!)
done
timeout $((secs + 60)) "$HELPERS/preadcheck" -t 16 -s "$secs" -D "${pairs[@]}" >"$T/out" 2>&1 ||
    { cat "$T/out"; fail "random preads mismatched, failed or hung (exit $?)"; }
for p in 1 2 3 4; do
    wait "${pids[p - 1]}" || { cat "$T/map.$p"; fail "mapping process $p mismatched, failed or hung"; }
done
alive "$DAEMON_PID" || fail "daemon died"
budget=$((16 + 3 * 16 + 16)) # MiB: cache, 16 threads, the rest
rss_within $((budget * 1024)) || fail "daemon peak RSS $((HWM / 1024)) MiB, over its budget of $budget MiB"
ok "$(cat "$T/out"); 4 processes: $(awk -F, '{ split($2, w, " "); n += w[1] } END { print n }' "$T"/map.*) mapped reads; in ${secs}s; daemon: $(stat_of "$M" read_requests) read requests, $(stat_of "$M" cache_misses) cache misses, peak RSS $((HWM / 1024)) MiB (budget $budget)"
for m in plain multi single packed cont; do
    [ "$(sha "$M/$m.gguf")" = "$(sha "$T/orig/$m.gguf")" ] || fail "$m.gguf after the stress"
done
ok "models byte-exact after the stress"
umount_fs "$M" "$DAEMON_PID"
