#!/bin/bash
# Faults (issue 3, item 3): a corrupt frame gives EIO on its range only, the rest of that file and
# every other model read correctly and the daemon stays up; an unparseable source appears as a
# plain file; a source replaced (by rename or in place) or removed during reads never yields
# mixed bytes, and new opens see the new version.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S" "$T/orig"
gen "$T/orig/good.gguf" --seed 31
gen "$T/orig/bad.gguf" --seed 32
gen "$T/orig/va.gguf" --seed 33
gen "$T/orig/vb.gguf" --seed 34 --layers 3
cp "$T/orig/good.gguf" "$S/good.gguf"
pzstd -q -p 2 "$T/orig/good.gguf" -o "$S/goodz.gguf.zst"
cp "$T/orig/good.gguf" "$T/orig/goodz.gguf"

# bad.gguf.zst: 1 MiB frames; frame 4's compressed bytes corrupted inside a block (the frame and
# block headers stay intact, so the file is still indexed; decoding that frame fails)
MiB=1048576
zstd_frames "$T/orig/bad.gguf" "$S/bad.gguf.zst" $MiB
mapfile -t fsz <"$S/bad.gguf.zst.frames"
rm "$S/bad.gguf.zst.frames"
K=4
off=0
for ((i = 0; i < K; i++)); do off=$((off + fsz[i])); done
$PY - "$S/bad.gguf.zst" $off <<'PYEOF' || fail "cannot corrupt frame $K"
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
assert b[off:off + 4] == b"\x28\xb5\x2f\xfd", "no frame at %d" % off
fhd = b[off + 4]
pos = off + 5 + (0 if fhd & 0x20 else 1) + [0, 1, 2, 4][fhd & 3]
pos += [1 if fhd & 0x20 else 0, 2, 4, 8][fhd >> 6]
while True:  # the first compressed block with room to spoil
    h = b[pos] | b[pos + 1] << 8 | b[pos + 2] << 16
    btype, bsize = (h >> 1) & 3, h >> 3
    if btype == 2 and bsize > 256:
        mid = pos + 3 + bsize // 2
        for i in range(mid, mid + 32):
            b[i] ^= 0x5A
        break
    assert not h & 1, "no compressed block in the frame"
    pos += 3 + (1 if btype == 1 else bsize)
open(p, "wb").write(b)
PYEOF
# unparseable sources
head -c 100000 /dev/urandom >"$S/junk.gguf"
head -c 50000 "$T/orig/good.gguf" >"$S/truncated.gguf"
echo "not zstd" >"$S/notzstd.gguf.zst"
head -c 2000000 "$S/goodz.gguf.zst" >"$S/cut.gguf.zst"

mount_fs "$S" "$M"

# --- corrupt frame: EIO on [K MiB, K+1 MiB) only
$PY - "$M/bad.gguf" "$T/orig/bad.gguf" $K <<'PYEOF' || fail "corrupt frame"
import errno, os, sys
mnt, orig, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
MiB = 1 << 20
ref = open(orig, "rb").read()
fd = os.open(mnt, os.O_RDONLY)
size = os.fstat(fd).st_size
assert size == len(ref), "size %d != %d" % (size, len(ref))
def rd(off, n):
    try:
        return os.pread(fd, n, off)
    except OSError as e:
        return e.errno
bad = 0
# every page of the corrupt frame fails with EIO, read alone or in larger reads that overlap it
for off in (k * MiB, k * MiB + 4096, k * MiB + MiB // 2, (k + 1) * MiB - 4096):
    r = rd(off, 4096)
    if r != errno.EIO:
        print("read at %d in the corrupt frame: %r, want EIO" % (off, r if isinstance(r, int) else "data"))
        bad += 1
r = rd(k * MiB - 8192, 3 * 4096)
if r != errno.EIO and not (isinstance(r, bytes) and r == ref[k * MiB - 8192:k * MiB]):
    print("a read overlapping the corrupt frame returned wrong data")
    bad += 1
# everything else reads right, page by page around the frame and in big pieces elsewhere
for off in list(range(0, k * MiB, MiB)) + list(range((k + 1) * MiB, size, MiB)):
    for o, n in ((off, MiB),) if off not in ((k - 1) * MiB, (k + 1) * MiB) else [(off + i, 4096) for i in range(0, MiB, 4096)]:
        n = min(n, size - o)
        r = rd(o, n)
        if r != ref[o:o + n]:
            print("read [%d, +%d): %s" % (o, n, "error %d" % r if isinstance(r, int) else "wrong bytes"))
            bad += 1
            break
sys.exit(1 if bad else 0)
PYEOF
ok "bad.gguf: EIO on the corrupt frame's range only, the rest of the file reads right"
n=$(grep -c "error: .*bad.gguf.zst.*4194304" "$T/daemon.log" || true)
[ "$n" -eq 1 ] || fail "the corrupt frame was logged $n times, want once with the file and the range"
[ "$(stat_of "$M" decode_errors)" -ge 1 ] || fail "decode_errors not counted"
ok "corrupt frame logged once: $(grep "error: .*bad.gguf.zst" "$T/daemon.log" | sed 's/.*error: //' | cut -c1-150)"

# --- the other models are fine, the daemon is up
alive "$DAEMON_PID" || fail "daemon died"
[ "$(sha "$M/good.gguf")" = "$(sha "$T/orig/good.gguf")" ] || fail "good.gguf after the fault"
[ "$(sha "$M/goodz.gguf")" = "$(sha "$T/orig/good.gguf")" ] || fail "goodz.gguf after the fault"
ok "other models byte-exact, daemon up"

# --- unparseable sources are plain files with their own bytes
for f in junk.gguf truncated.gguf notzstd.gguf.zst cut.gguf.zst; do
    [ -f "$M/$f" ] || fail "$f is not shown as a plain file: $(ls "$M")"
    cmp -s "$M/$f" "$S/$f" || fail "$f: bytes differ from the source"
done
[ -e "$M/junk.tensors" ] && fail "junk.tensors shown for an unparseable source"
[ -e "$M/notzstd.gguf" ] && fail "notzstd.gguf shown for an unparseable source"
for f in junk.gguf truncated.gguf notzstd.gguf.zst; do
    [ "$(grep -c "$f" "$T/daemon.log")" -eq 1 ] || fail "$f: logged $(grep -c "$f" "$T/daemon.log") times, want once"
done
ls -l "$M" >/dev/null
[ "$(grep -c "junk.gguf" "$T/daemon.log")" -eq 1 ] || fail "junk.gguf logged again on a new listing"
ok "unparseable sources: plain files, logged once each"

# --- replaced by rename while being read: every read sees one version, new opens the new one
zstd -q "$T/orig/va.gguf" -o "$T/va.zst"
zstd -q "$T/orig/vb.gguf" -o "$T/vb.zst"
cp "$T/va.zst" "$S/v.gguf.zst"
cp "$T/orig/va.gguf" "$S/p.gguf"
A=$(sha "$T/orig/va.gguf")
B=$(sha "$T/orig/vb.gguf")
timeout 60 cat "$M/v.gguf" "$M/p.gguf" >/dev/null
(
    for i in $(seq 1 12); do
        if [ $((i % 2)) -eq 1 ]; then z=vb src=$T/orig/vb.gguf; else z=va src=$T/orig/va.gguf; fi
        cp "$T/$z.zst" "$S/.v.tmp" && mv "$S/.v.tmp" "$S/v.gguf.zst"
        cp "$src" "$S/.p.tmp" && mv "$S/.p.tmp" "$S/p.gguf"
        sleep 0.3
    done
    touch "$T/swapped"
) &
swapper=$!
PIDS+=("$swapper")
timeout 300 $PY - "$M" "$A" "$B" "$T/swapped" <<'PYEOF' || fail "mixed bytes under replacement"
import hashlib, os, sys, time
mnt, A, B, done = sys.argv[1:5]
counts = {"A": 0, "B": 0, "errors": 0}
# read until the swapper is done, and at least a few times (slow sanitizer builds)
while not os.path.exists(done) or counts["A"] + counts["B"] < 4:
    for name in ("v.gguf", "p.gguf"):
        h = hashlib.sha256()
        try:
            with open(os.path.join(mnt, name), "rb") as f:
                while True:
                    b = f.read(300000)
                    if not b:
                        break
                    h.update(b)
                    time.sleep(0.002)  # slow reader: replacements land mid-read
        except OSError as e:
            # allowed: an open that raced two replacements in a row
            print("%s: %s" % (name, e.strerror))
            counts["errors"] += 1
            continue
        d = h.hexdigest()
        if d == A:
            counts["A"] += 1
        elif d == B:
            counts["B"] += 1
        else:
            print("%s: read a mix of versions (sha %s)" % (name, d[:16]))
            sys.exit(1)
print("reads: %d of version A, %d of version B, %d errors" % (counts["A"], counts["B"], counts["errors"]))
sys.exit(0 if counts["errors"] <= (counts["A"] + counts["B"]) // 4 else 1)
PYEOF
timeout 30 tail --pid=$swapper -f /dev/null
# the last swap put version A back (12 is even)
[ "$(sha "$M/v.gguf")" = "$A" ] || fail "v.gguf: a new open does not see the last version"
[ "$(sha "$M/p.gguf")" = "$A" ] || fail "p.gguf: a new open does not see the last version"
[ "$(stat -c %s "$M/v.gguf")" = "$(stat -c %s "$T/orig/va.gguf")" ] || fail "v.gguf: stale size"
ok "replaced by rename during reads: no mixed bytes; new opens see the new version"

# --- modified in place while open: the open handle gets the old bytes or an error, never a mix
$PY - "$M/p.gguf" "$S/p.gguf" "$T/orig/vb.gguf" "$A" "$B" <<'PYEOF' || fail "mixed bytes after an in-place change"
import hashlib, os, shutil, sys
mnt, src, newsrc, A, B = sys.argv[1:6]
f = open(mnt, "rb", buffering=0)
first = f.read(1 << 20)
# rewrite the source in place (same inode), as `cp new old` does
with open(newsrc, "rb") as i, open(src, "r+b") as o:
    o.truncate(0)
    shutil.copyfileobj(i, o)
try:
    rest = f.read()
    d = hashlib.sha256(first + rest).hexdigest()
    if d != A:
        print("the open handle read a mix (sha %s)" % d[:16])
        sys.exit(1)
    print("open handle: old version (from the page cache)")
except OSError as e:
    print("open handle: error %s (allowed)" % e.strerror)
f.close()
d = hashlib.sha256(open(mnt, "rb").read()).hexdigest()
if d != B:
    print("a new open after the in-place change does not see the new version")
    sys.exit(1)
PYEOF
ok "modified in place: the open handle never mixes; a new open sees the new version"

# --- a pass-through file rewritten in place while open: old bytes or ESTALE, never a mix
head -c 3000000 /dev/urandom >"$S/data.bin"
head -c 3000000 /dev/urandom >"$T/data2.bin"
$PY - "$M/data.bin" "$S/data.bin" "$T/data2.bin" <<'PYEOF' || fail "pass-through file: mixed bytes after an in-place change"
import errno, os, shutil, sys
mnt, src, new = sys.argv[1:4]
old = open(src, "rb").read()
fd = os.open(mnt, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
first = os.pread(fd, 4096, 0)
with open(new, "rb") as i, open(src, "r+b") as o:
    shutil.copyfileobj(i, o)
try:
    rest = os.pread(fd, len(old), 1 << 20)
    if rest != old[1 << 20:]:
        print("the open handle read bytes of the new version")
        sys.exit(1)
except OSError as e:
    if e.errno != errno.ESTALE:
        raise
os.close(fd)
if open(mnt, "rb").read() != open(new, "rb").read():
    print("a new open does not see the new contents")
    sys.exit(1)
PYEOF
ok "pass-through file rewritten in place: the open handle never mixes; a new open sees the new contents"

# --- replaced without anyone opening it: stat() sees the new size soon (inotify invalidates)
stat -c %s "$M/v.gguf" >/dev/null
cp "$T/vb.zst" "$S/.v.tmp" && mv "$S/.v.tmp" "$S/v.gguf.zst"
want=$(stat -c %s "$T/orig/vb.gguf")
size_is() { [ "$(stat -c %s "$1")" = "$2" ]; }
wait_until 5 size_is "$M/v.gguf" "$want" || fail "stat of v.gguf still shows the old size"
ok "replaced source: stat() shows the new size without an open"

# --- removed: gone for stat, opens and listings
ls -l "$M/v.gguf" "$M/v.tensors" "$M/v.meta" >/dev/null
rm "$S/v.gguf.zst"
grep -q '^v\.' <<<"$(ls "$M")" && fail "v.* still listed after its source was removed"
timeout 10 cat "$M/v.gguf" >/dev/null 2>&1 && fail "v.gguf still opens after its source was removed"
wait_until 5 test ! -e "$M/v.meta" || fail "v.meta still there (stat) after its source was removed"
wait_until 5 test ! -e "$M/v.tensors" || fail "v.tensors still there (stat) after its source was removed"
ok "removed source: gone from listings, opens and (after inotify) stat"

alive "$DAEMON_PID" || fail "daemon died"
umount_fs "$M" "$DAEMON_PID"
ok "daemon up to the end, unmounted cleanly"
