#!/bin/bash
# The source on a failing disk (issue 7, item 3): SOURCE is an errfs mount (tests/helpers/errfs.c,
# a FUSE passthrough that fails reads, opens, stats and listings on demand) over a plain GGUF, a
# seekable zstd, a container and a plain file. EIO from the disk reaches the reader as EIO (the
# bytes before it are right), nothing hangs, the daemon stays up, and once the disk is healthy
# again every file reads right: failures are not cached.
source "$(dirname "$0")/lib/mount.sh"

[ -x "$HELPERS/errfs" ] || fail "no $HELPERS/errfs (run make test)"
L=$T/lower S=$T/src M=$T/mnt C=$T/control
mkdir -p "$L/sub" "$S" "$T/orig"
gen "$T/orig/p.gguf" --seed 81 --dim 32 --layers 1
gen "$T/orig/z.gguf" --seed 82 --dim 32 --layers 1
gen "$T/orig/c.gguf" --seed 83 --dim 32 --layers 1
gen "$T/orig/n.gguf" --seed 84 --dim 32 --layers 1
cp "$T/orig/p.gguf" "$L/p.gguf"
"$MFS_BIN/modelfs-pack" -q --chunk 256K "$T/orig/z.gguf" "$L/z.gguf.zst" || fail "modelfs-pack zst"
"$MFS_BIN/modelfs-pack" -q "$T/orig/c.gguf" "$L/c.mfz" || fail "modelfs-pack container"
head -c 3000000 /dev/urandom >"$L/data.bin"
cp "$L/data.bin" "$T/orig/data.bin"
echo hello >"$L/sub/readme.txt"
: >"$C"

"$HELPERS/errfs" "$L" "$S" "$C" >>"$T/errfs.log" 2>&1 &
ERRFS_PID=$!
PIDS+=("$ERRFS_PID")
MOUNTS+=("$S")
wait_until 10 mountpoint -q "$S" || fail "errfs did not mount"
mount_fs "$S" "$M" -o cache=2M
MOUNTS=("$M" "$S") # unmount modelfs first

# rd FILE REF: read FILE (O_DIRECT: every read reaches the daemon) and compare with REF; prints
# "ok", or "eio AT" (the bytes before AT matched), "eio open", or what else went wrong
rd() {
    timeout 60 $PY - "$1" "$2" <<'PYEOF'
import errno, mmap, os, sys
path, ref = sys.argv[1], open(sys.argv[2], "rb").read()
try:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
except OSError as e:
    print("eio open" if e.errno == errno.EIO else "error %s at open" % errno.errorcode[e.errno])
    sys.exit(0)
buf = mmap.mmap(-1, 1 << 20)
pos = 0
try:
    while True:
        try:
            n = os.preadv(fd, [buf], pos)
        except OSError as e:
            print("eio %d" % pos if e.errno == errno.EIO else "error %s at %d" % (errno.errorcode[e.errno], pos))
            break
        if n == 0:
            print("ok" if pos == len(ref) else "short %d" % pos)
            break
        if buf[:n] != ref[pos:pos + n]:
            print("wrong bytes at %d" % pos)
            break
        pos += n
finally:
    os.close(fd)
PYEOF
}
files="p.gguf:p.gguf z.gguf:z.gguf c.gguf:c.gguf data.bin:data.bin"
for fr in $files; do
    [ "$(rd "$M/${fr%%:*}" "$T/orig/${fr##*:}")" = ok ] || fail "${fr%%:*}: not right on a healthy disk"
done
ok "healthy disk: every file right through errfs and modelfs"

# --- reads past 1 MiB of every source file fail
for f in p.gguf z.gguf.zst c.mfz data.bin; do echo "read /$f 1048576"; done >"$C"
for fr in $files; do
    r=$(rd "$M/${fr%%:*}" "$T/orig/${fr##*:}")
    case "$r" in eio*) ;; *) fail "${fr%%:*} with reads past 1 MiB failing: $r, want EIO" ;; esac
    ok "${fr%%:*}: source reads past 1 MiB fail -> $r (the bytes before it right)"
done
alive "$DAEMON_PID" || fail "daemon died"
[ "$(grep -c "errfs: read" "$T/errfs.log")" -gt 0 ] || fail "errfs injected nothing"

# --- healthy again: everything reads right, nothing was cached as failed
: >"$C"
for fr in $files; do
    [ "$(rd "$M/${fr%%:*}" "$T/orig/${fr##*:}")" = ok ] || fail "${fr%%:*}: not right once the disk is healthy"
done
ok "disk healthy again: every file right (failures are not cached)"

# --- every read fails, and opens, stats and listings too: errors, no hang
cp "$T/orig/n.gguf" "$L/n.gguf"
printf 'read * 0\nopen /n.gguf\n' >"$C"
for fr in $files; do
    r=$(rd "$M/${fr%%:*}" "$T/orig/${fr##*:}")
    case "$r" in eio*) ;; *) fail "${fr%%:*} with every read failing: $r, want EIO" ;; esac
done
timeout 20 ls "$M" >/dev/null || fail "listing with failing reads"
[ -e "$M/n.meta" ] && fail "n.gguf opened although its open fails"
r=$(rd "$M/n.gguf" "$T/orig/n.gguf")
case "$r" in eio*) ;; *) fail "n.gguf (open fails): $r, want EIO" ;; esac
grep -q "n.gguf: .*Input/output error; shown as it is" "$T/daemon.log" || fail "n.gguf's failed open not logged"
ok "every read and n.gguf's open failing: EIO for every file, n.gguf passed through, nothing hangs"

printf 'readdir *\ngetattr /sub\n' >"$C"
timeout 20 ls "$M/sub" >/dev/null 2>&1 && fail "listing sub/ with readdir failing succeeded"
timeout 20 stat "$M" >/dev/null || fail "stat of the mount root hangs or fails"
ok "readdir and getattr failing: errors, no hang"

: >"$C"
cat "$M/sub/readme.txt" >/dev/null || fail "sub/readme.txt once healthy"
wait_until 10 test -e "$M/n.meta" || fail "n.gguf not a model once its open works"
[ "$(rd "$M/n.gguf" "$T/orig/n.gguf")" = ok ] || fail "n.gguf not right once healthy"

# --- a slow disk: reads wait, then complete
echo "delay * 300" >"$C"
[ "$(rd "$M/data.bin" "$T/orig/data.bin")" = ok ] || fail "data.bin on a slow disk"
: >"$C"
ok "disk healthy again: sub/ lists, n.gguf opens as a model; a slow disk (300 ms a read) only slows reads"

alive "$DAEMON_PID" || fail "daemon died"
umount_fs "$M" "$DAEMON_PID"
timeout 10 fusermount3 -u "$S" || fail "errfs unmount"
ok "daemon up to the end, both mounts unmounted cleanly"
