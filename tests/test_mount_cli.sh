#!/bin/bash
# The command line (issue 3): --help, --version, exit codes (0 ok, 1 bad input, 2 bad usage),
# daemonizing and unmounting on SIGTERM, -f and SIGINT, fusermount3 -u, the FUSE mount helper
# (mount.fuse3 and `mount -t fuse`, as /etc/fstab uses them) with the options mount(8) adds,
# readahead= written to the mount's read_ahead_kb, allow_other implying default_permissions, and a
# mountpoint inside the source.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S" "$M" "$T/orig"
gen "$T/orig/a.gguf" --seed 51
cp "$T/orig/a.gguf" "$S/a.gguf"
A=$(sha "$T/orig/a.gguf")
mfs=$MFS_BIN/modelfs

# --- help, version, usage errors
out=$("$mfs" --help) || fail "--help exit $?"
# (here-strings, not pipes into grep -q: with pipefail an early exit of grep fails the pipe)
grep -q "^Usage: modelfs" <<<"$out" || fail "--help: no usage line"
for o in align= cache= threads= readahead= allow_other max_threads; do
    grep -q -- "$o" <<<"$out" || fail "--help does not mention $o"
done
ver=$("$mfs" --version) || fail "--version exit $?"
grep -q "^modelfs [0-9]" <<<"$ver" || fail "--version: $ver"
"$mfs" -V >/dev/null || fail "-V"
ok "--help and --version exit 0"
expect_exit() { # CODE PATTERN ARGS...: exit CODE with PATTERN on stderr, nothing mounted
    local code=$1 pat=$2 rc=0
    shift 2
    timeout 10 "$mfs" "$@" >"$T/o" 2>"$T/e" || rc=$?
    [ $rc -eq "$code" ] || fail "modelfs $*: exit $rc, want $code ($(head -c 300 "$T/e"))"
    grep -q -- "$pat" "$T/e" || fail "modelfs $*: stderr lacks '$pat': $(head -c 300 "$T/e")"
    mountpoint -q "$M" && fail "modelfs $*: mounted anyway"
    return 0
}
expect_exit 2 "no SOURCE"
expect_exit 2 "no MOUNTPOINT" "$S"
expect_exit 2 "unexpected argument" "$S" "$M" extra
expect_exit 2 "align=48" -o align=48 "$S" "$M"
expect_exit 2 "cache=lots" -o cache=lots "$S" "$M"
expect_exit 2 "threads=0" -o threads=0 "$S" "$M"
expect_exit 2 "bogus" -o bogus "$S" "$M"
expect_exit 1 "$T/nope" "$T/nope" "$M"
expect_exit 1 "$S/a.gguf" "$S/a.gguf" "$M"
expect_exit 1 "inside the mountpoint" "$S" "$T"
ok "bad usage exits 2, bad input exits 1, each with one line naming the problem"

# --- daemonized: returns at once, serves, unmounts on SIGTERM
timeout 10 "$mfs" "$S" "$M" || fail "daemon mode: exit $?"
wait_until 10 mountpoint -q "$M" || fail "daemon mode: not mounted"
MOUNTS+=("$M")
pid=$(pgrep -f "^$mfs $S $M\$" || true)
[ "$(wc -w <<<"$pid")" -eq 1 ] || fail "daemon mode: daemon process '$pid'"
[ -n "$pid" ] || fail "daemon mode: no daemon process"
PIDS+=("$pid")
[ "$(sha "$M/a.gguf")" = "$A" ] || fail "daemon mode: a.gguf"
kill -TERM "$pid"
wait_until 10 eval '! mountpoint -q "$M"' || fail "SIGTERM did not unmount"
timeout 10 tail --pid="$pid" -f /dev/null || fail "daemon did not exit on SIGTERM"
ok "daemonizes, serves, unmounts and exits on SIGTERM"

# --- foreground: SIGINT; fusermount3 -u
mount_fs "$S" "$M"
kill -INT "$DAEMON_PID"
timeout 10 tail --pid="$DAEMON_PID" -f /dev/null || fail "-f: no exit on SIGINT"
rc=0
wait "$DAEMON_PID" || rc=$?
[ $rc -eq 0 ] || fail "-f: exit $rc on SIGINT"
mountpoint -q "$M" && fail "-f: still mounted after SIGINT"
mount_fs "$S" "$M"
umount_fs "$M" "$DAEMON_PID"
ok "-f: SIGINT and fusermount3 -u unmount, exit 0"

# --- single-threaded; and SIGTERM while readers and source changes keep the daemon busy
mount_fs "$S" "$M" -s
[ "$(sha "$M/a.gguf")" = "$A" ] || fail "-s: a.gguf"
umount_fs "$M" "$DAEMON_PID"
mount_fs "$S" "$M"
# readers and a source swapper that stop by themselves when told (a killed loop could leave a
# last cp or mv running behind it)
(while [ ! -e "$T/stop" ]; do cat "$M/a.gguf" >/dev/null 2>&1; ls "$M" >/dev/null 2>&1; done) &
readers=$!
(while [ ! -e "$T/stop" ]; do cp "$S/a.gguf" "$S/.t" && mv "$S/.t" "$S/b.gguf"; done) &
swapper=$!
PIDS+=("$readers" "$swapper")
sleep 1
kill -TERM "$DAEMON_PID"
timeout 15 tail --pid="$DAEMON_PID" -f /dev/null || fail "no exit on SIGTERM under load"
rc=0
wait "$DAEMON_PID" || rc=$?
[ $rc -eq 0 ] || fail "exit $rc on SIGTERM under load"
mountpoint -q "$M" && fail "still mounted after SIGTERM under load"
touch "$T/stop"
timeout 30 tail --pid="$readers" -f /dev/null || fail "readers did not stop"
timeout 30 tail --pid="$swapper" -f /dev/null || fail "swapper did not stop"
rm -f "$S/b.gguf" "$S/.t"
ok "-s works; SIGTERM under reads and source changes: unmounted, exit 0"

# --- the FUSE mount helper, as /etc/fstab runs it: mount.fuse3 with mount(8)'s options
bdi_ra() { cat "/sys/class/bdi/$(mountpoint -d "$1")/read_ahead_kb"; }
PATH="$MFS_BIN:$PATH" timeout 20 mount.fuse3 "$S" "$M" -t modelfs \
    -o rw,dev,suid,noauto,nofail,_netdev,x-systemd.automount,cache=64M,readahead=8M,allow_other ||
    fail "mount.fuse3 -t modelfs"
MOUNTS+=("$M")
opts=$(awk -v m="$M" '$2 == m { print $3 " " $4 }' /proc/mounts)
case "$opts" in "fuse.modelfs ro,"*) ;; *) fail "mount helper: not read-only fuse.modelfs: $opts" ;; esac
case "$opts" in *nosuid*nodev* | *nodev*nosuid*) ;; *) fail "mount helper: not nosuid,nodev: $opts" ;; esac
case "$opts" in *default_permissions*allow_other*) ;; *) fail "allow_other without default_permissions: $opts" ;; esac
wait_until 5 eval '[ "$(bdi_ra "$M")" = 8192 ]' || fail "readahead=8M: read_ahead_kb is $(bdi_ra "$M")"
[ "$(sha "$M/a.gguf")" = "$A" ] || fail "mount helper: a.gguf"
timeout 10 umount "$M" || fail "umount"
ok "mount.fuse3 (fstab's path): mount(8)'s options accepted, ro, allow_other + default_permissions, read_ahead_kb 8192"

# `mount -t fuse PROG#SOURCE` (an fstab line for a modelfs not in mount(8)'s PATH)
timeout 20 mount -t fuse "$mfs#$S" "$M" -o noauto || fail "mount -t fuse"
case "$(awk -v m="$M" '$2 == m { print $4 }' /proc/mounts)" in *allow_other*) fail "allow_other without asking" ;; esac
wait_until 5 eval '[ "$(bdi_ra "$M")" = 4096 ]' || fail "default readahead: read_ahead_kb is $(bdi_ra "$M")"
[ "$(sha "$M/a.gguf")" = "$A" ] || fail "mount -t fuse: a.gguf"
timeout 10 umount "$M" || fail "umount"
ok "mount -t fuse 'modelfs#SOURCE': default readahead 4M, allow_other off"

# mount.modelfs, as make install links it into sbin: mount(8) runs it for fstab type "modelfs"
# as `mount.modelfs SOURCE MOUNTPOINT [-sfnv] -o OPTS [-t TYPE]`
ln -s "$mfs" "$T/mount.modelfs"
timeout 20 "$T/mount.modelfs" "$S" "$M" -n -v -s -o rw,dev,suid,nofail -t modelfs || fail "mount.modelfs: exit $?"
MOUNTS+=("$M")
wait_until 10 mountpoint -q "$M" || fail "mount.modelfs: not mounted"
[ "$(sha "$M/a.gguf")" = "$A" ] || fail "mount.modelfs: a.gguf"
timeout 10 umount "$M" || fail "umount"
timeout 10 "$T/mount.modelfs" "$S" "$M" -f -o ro || fail "mount.modelfs -f (fake): exit $?"
mountpoint -q "$M" && fail "mount.modelfs -f (fake) mounted"
ok "mount.modelfs: mount(8)'s helper flags -n -v -s -t accepted, -f (fake) mounts nothing"

# --- the mountpoint inside the source: hidden there, no recursion
mkdir -p "$S/mnt"
mount_fs "$S" "$S/mnt" -o readahead=0
[ "$(cd "$S/mnt" && ls | tr '\n' ' ')" = "a.gguf a.meta a.tensors " ] ||
    fail "mountpoint inside the source: listing is $(ls "$S/mnt" | tr '\n' ' ')"
[ "$(sha "$S/mnt/a.gguf")" = "$A" ] || fail "mountpoint inside the source: a.gguf"
umount_fs "$S/mnt" "$DAEMON_PID"
ok "mountpoint inside the source: hidden in the mount"
