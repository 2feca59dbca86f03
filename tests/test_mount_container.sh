#!/bin/bash
# The tensor-aware container through the mount (issue 6): NAME.mfz and NAME.gguf.mfz appear as
# NAME.gguf with the original's sha256 (read and mapped as llama.cpp does), with their views and a
# [codecs] section in NAME.meta; a container with a corrupt chunk gives EIO on that chunk's bytes
# only and the daemon stays up; an unparseable container is passed through as a plain file.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S" "$T/orig"
gen "$T/orig/wb.gguf" --seed 41 --type bf16 --dim 128 --ffn 256
gen "$T/orig/wh.gguf" --seed 42 --type f16 --dim 128 --ffn 256
gen "$T/orig/wq.gguf" --seed 43 --type q8_0 --dim 128 --ffn 256
"$MFS_BIN/modelfs-pack" -q "$T/orig/wb.gguf" "$S/wb.mfz" || fail "modelfs-pack wb"
"$MFS_BIN/modelfs-pack" -q --chunk 64K "$T/orig/wh.gguf" "$S/wh.gguf.mfz" || fail "modelfs-pack wh"
"$MFS_BIN/modelfs-pack" -q -T 1 "$T/orig/wq.gguf" "$S/wq.mfz" || fail "modelfs-pack wq"
# bad.mfz: wb.mfz with the checksum of a chunk in the middle flipped (its bytes decode, but do not
# match); the layout is in loader/container.h
cp "$T/orig/wb.gguf" "$T/orig/bad.gguf"
cp "$S/wb.mfz" "$S/bad.mfz"
read -r lo hi < <($PY - "$S/bad.mfz" <<'PYEOF'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
n, index = struct.unpack_from("<QQ", b, 24)
entries = [struct.unpack_from("<QIIQIBBBB", b, index + 32 * i) for i in range(n)]
k = [i for i, e in enumerate(entries) if e[1] > 0 and e[2] >= 65536][len(entries) // 3]
lo = sum(e[2] for e in entries[:k])
b[index + 32 * k + 16] ^= 1
open(p, "wb").write(b)
print(lo, lo + entries[k][2])
PYEOF
)
cp "$ROOT/tests/data/container/bad-version.mfz" "$S/future.mfz" # does not open: shown as itself

mount_fs "$S" "$M"

for m in wb wh wq; do
    want=$(sha "$T/orig/$m.gguf")
    [ "$(sha "$M/$m.gguf")" = "$want" ] || fail "$m: read bytes differ"
    [ "$(timeout 60 "$HELPERS/mapread" "$M/$m.gguf" | sha256sum | cut -d' ' -f1)" = "$want" ] || fail "$m: mapped bytes differ"
    timeout 120 $PY "$ROOT/tests/lib/check_view.py" "$M" "$m" "$T/orig/$m.gguf" || fail "$m: views"
    grep -q '^compression = modelfs container, [0-9]* frames, XXH3-64 checksums$' "$M/$m.meta" || fail "$m: meta source"
    grep -q '^\[codecs\] ' "$M/$m.meta" || fail "$m: no [codecs] in meta"
    ok "$m: container presented as $m.gguf, same bytes, views and meta"
done
[ ! -e "$M/wh.gguf.gguf" ] && [ ! -e "$M/wb.mfz" ] || fail "compressed originals shown twice"

$PY - "$M/bad.gguf" "$T/orig/bad.gguf" "$lo" "$hi" <<'PYEOF' || fail "corrupt chunk"
import errno, os, sys
mnt, orig, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
P, MiB = 4096, 1 << 20
ref = open(orig, "rb").read()
fd = os.open(mnt, os.O_RDONLY)
def rd(off, n):
    try:
        return os.pread(fd, n, off)
    except OSError as e:
        return e.errno
bad = 0
# every page holding a byte of the chunk fails, read alone
for off in range(lo // P * P, hi, P):
    if rd(off, P) != errno.EIO:
        print("read of page %d of the corrupt chunk [%d, %d): not EIO" % (off, lo, hi))
        bad += 1
# the other pages read right: one by one next to the chunk, in big pieces further away
first, last = lo // P * P, (hi + P - 1) // P * P
for o, n in [(o, P) for o in range(max(0, first - 64 * P), first, P)] + \
            [(o, P) for o in range(last, min(len(ref), last + 64 * P), P)] + \
            [(o, MiB) for o in range(0, max(0, first - 64 * P - MiB), MiB)] + \
            [(o, MiB) for o in range(last + 64 * P, len(ref), MiB)]:
    n = min(n, len(ref) - o)
    r = rd(o, n)
    if r != ref[o:o + n]:
        print("read [%d, +%d): %s" % (o, n, "error %d" % r if isinstance(r, int) else "wrong bytes"))
        bad += 1
        break
sys.exit(1 if bad else 0)
PYEOF
alive "$DAEMON_PID" || fail "daemon died on a corrupt chunk"
[ "$(stat_of "$M" decode_errors)" -ge 1 ] || fail "no decode error counted"
ok "bad.gguf: EIO on the corrupt chunk's bytes only"

cmp -s "$M/future.mfz" "$S/future.mfz" || fail "an unparseable container is not passed through"
[ ! -e "$M/future.gguf" ] || fail "an unparseable container is presented"
ok "future.mfz (container version 2): passed through"

umount_fs "$M" "$DAEMON_PID"
echo "all container mount tests passed"
