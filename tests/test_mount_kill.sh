#!/bin/bash
# The daemon killed (issue 7, item 3): SIGKILL while readers are inside reads (O_DIRECT preads and
# a process faulting in a shared mapping, on a cold cache, with reads slowed by a tiny cache) ends
# every reader with an error within seconds, never a hang; `fusermount3 -uz` clears the dead mount
# and a new mount on the same mount point serves the same bytes.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S" "$T/orig"
gen "$T/orig/big.gguf" --seed 91 --dim 256 --ffn 688 --layers 6
"$MFS_BIN/modelfs-pack" -q "$T/orig/big.gguf" "$S/big.mfz" || fail "modelfs-pack"
"$MFS_BIN/modelfs-pack" -q --format zst --chunk 256K "$T/orig/big.gguf" "$S/bigz.gguf.zst" || fail "modelfs-pack zst"
mount_fs "$S" "$M" -o cache=1M,threads=1,max_threads=4

# readers that run long: preads in a loop (half O_DIRECT) and mapping processes
pairs=("$M/big.gguf=$T/orig/big.gguf" "$M/bigz.gguf=$T/orig/big.gguf")
readers=()
"$HELPERS/preadcheck" -D -t 4 -s 120 "${pairs[@]}" >"$T/r1" 2>&1 &
readers+=($!)
"$HELPERS/preadcheck" -M -D -t 2 -s 120 "${pairs[@]}" >"$T/r2" 2>&1 &
readers+=($!)
sleep 2
for r in "${readers[@]}"; do alive "$r" || fail "a reader ended before the kill: $(cat "$T"/r1 "$T"/r2)"; done
reads_before=$(stat_of "$M" read_requests)
[ "${reads_before:-0}" -gt 0 ] || fail "no reads reached the daemon before the kill"

kill -KILL "$DAEMON_PID"
t0=$EPOCHREALTIME
for r in "${readers[@]}"; do
    for _ in $(seq 100); do alive "$r" || break; sleep 0.1; done
    alive "$r" && fail "reader $r still running 10 s after the daemon was killed (hung)"
    wait "$r" && fail "reader $r exited 0 although the daemon died under it"
done
ok "SIGKILL with $reads_before reads served: every reader ended with an error in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s: $(grep -ho "Transport endpoint[^,]*\|Bus error\|Software caused[^,]*" "$T"/r1 "$T"/r2 | sort -u | paste -sd, -)"

# the dead mount answers ENOTCONN, then clears
timeout 10 stat "$M/big.gguf" >/dev/null 2>&1 && fail "the dead mount still answers"
timeout 10 fusermount3 -uz "$M" || fail "fusermount3 -uz on the dead mount"
mountpoint -q "$M" && fail "still a mount point after fusermount3 -uz"
mount_fs "$S" "$M"
[ "$(sha "$M/big.gguf")" = "$(sha "$T/orig/big.gguf")" ] || fail "big.gguf after the remount"
[ "$(sha "$M/bigz.gguf")" = "$(sha "$T/orig/big.gguf")" ] || fail "bigz.gguf after the remount"
ok "fusermount3 -uz cleared the dead mount; a new mount on it is byte-exact"
umount_fs "$M" "$DAEMON_PID"
