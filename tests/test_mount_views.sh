#!/bin/bash
# The mount's views (issue 3, item 1): for a plain GGUF, a modelfs-pack'ed one, a `zstd -T0`
# single-frame one and a pzstd multi-frame one, MOUNT/NAME.gguf has the original's sha256, an
# mmap(MAP_SHARED|MAP_POPULATE) of it reads the same bytes, every NAME.tensors/* file equals its
# slice, NAME.meta and the xattrs are right. Also: a name clash, escaped tensor names, a
# tensor-less real GGUF, pass-through files and symlinks, and read-only errors.
source "$(dirname "$0")/lib/mount.sh"

S=$T/src M=$T/mnt
mkdir -p "$S/sub/deeper" "$T/orig"
gen "$T/orig/plain.gguf" --seed 1
gen "$T/orig/packed.gguf" --seed 2 --type q8_0 --ffn 192
gen "$T/orig/single.gguf" --seed 3 --type f32 --dim 32
gen "$T/orig/multi.gguf" --seed 4 --type q4_0 --ffn 192
cp "$T/orig/plain.gguf" "$S/plain.gguf"
zstd -q -T0 -3 "$T/orig/single.gguf" -o "$S/single.gguf.zst"
pzstd -q -p 2 "$T/orig/multi.gguf" -o "$S/multi.gguf.zst"
"$MFS_BIN/modelfs-pack" "$T/orig/packed.gguf" "$S/packed.gguf.zst" >/dev/null || fail "modelfs-pack"
models="plain single multi packed"
# tensor names that need escaping, and a real tensor-less GGUF
$PY - "$T/orig/names.gguf" <<'PYEOF'
import sys, numpy as np, mfsgguf
w = mfsgguf.GGUFWriter(sys.argv[1])
w.add_kv("general.architecture", mfsgguf.STRING, "test")
for i, n in enumerate(["a/b/c", ".hidden", "100%", "tab\there", "plain.weight", "..", "%2F"]):
    w.add_tensor(n, 0, [8, 2], np.arange(16, dtype=np.float32) + i)
w.write()
PYEOF
cp "$T/orig/names.gguf" "$S/names.gguf"
cp "${MFS_SHARED_DATA:-$ROOT/../shared/data}/ggml-vocab-gpt-2.gguf" "$T/orig/vocab.gguf"
cp "$T/orig/vocab.gguf" "$S/vocab.gguf"
# a clash: plain.gguf keeps its name, the compressed copy gets its full name plus .gguf
zstd -q "$T/orig/plain.gguf" -o "$S/plain.gguf.zst"
echo "hello" >"$S/sub/readme.txt"
printf 'x%.0s' $(seq 1 5000) >"$S/sub/deeper/big.txt"
ln -s ../plain.gguf "$S/sub/inside"
ln -s /etc/passwd "$S/sub/outside"
mkfifo "$S/sub/fifo"

mount_fs "$S" "$M"

# --- listing
got=$(cd "$M" && ls -A | tr '\n' ' ')
want=".modelfs multi.gguf multi.meta multi.tensors names.gguf names.meta names.tensors packed.gguf packed.meta packed.tensors plain.gguf plain.gguf.zst.gguf plain.gguf.zst.meta plain.gguf.zst.tensors plain.meta plain.tensors single.gguf single.meta single.tensors sub vocab.gguf vocab.meta vocab.tensors "
[ "$got" = "$want" ] || fail "root listing: got '$got', want '$want'"
ok "root listing ($(echo "$got" | wc -w) names; compressed originals not shown twice)"

# --- every model: sha256, mmap, tensors, meta, xattrs
for m in $models names vocab; do
    want=$(sha "$T/orig/$m.gguf")
    [ "$(sha "$M/$m.gguf")" = "$want" ] || fail "$m.gguf: sha256 differs from the original"
    [ "$(timeout 60 "$HELPERS/mapread" "$M/$m.gguf" | sha256sum | cut -d' ' -f1)" = "$want" ] ||
        fail "$m.gguf: mmap(MAP_POPULATE) bytes differ"
    [ "$(stat -c %s "$M/$m.gguf")" = "$(stat -c %s "$T/orig/$m.gguf")" ] || fail "$m.gguf: size differs"
    timeout 120 $PY "$ROOT/tests/lib/check_view.py" "$M" "$m" "$T/orig/$m.gguf" || fail "$m: views"
    ok "$m.gguf: sha256, mmap, $(ls "$M/$m.tensors" | wc -l) tensor files, xattrs, meta"
done
[ "$(sha "$M/plain.gguf.zst.gguf")" = "$(sha "$T/orig/plain.gguf")" ] || fail "plain.gguf.zst.gguf differs"
ok "name clash: plain.gguf and plain.gguf.zst.gguf"

# --- escaped tensor names
[ -e "$M/names.tensors/a%2Fb%2Fc" ] || [ -e "$M/names.tensors/a%2fb%2fc" ] || fail "a/b/c not escaped as a%2Fb%2Fc"
grep -q '^\.' <<<"$(ls -A "$M/names.tensors")" && fail "a tensor file name starts with ."
ok "tensor names escaped: $(ls -A "$M/names.tensors" | tr '\n' ' ')"

# --- pass-through
[ "$(cat "$M/sub/readme.txt")" = hello ] || fail "sub/readme.txt"
cmp -s "$M/sub/deeper/big.txt" "$S/sub/deeper/big.txt" || fail "sub/deeper/big.txt"
[ "$(readlink "$M/sub/inside")" = ../plain.gguf ] || fail "symlink inside"
[ "$(readlink "$M/sub/outside")" = /etc/passwd ] || fail "symlink outside: shown as a link"
[ -L "$M/sub/outside" ] || fail "sub/outside is not a symlink"
[ -e "$M/sub/fifo" ] && fail "a FIFO is passed through"
cmp -s "$M/sub/inside" "$T/orig/plain.gguf" || fail "a symlink inside the tree resolves in the mount"
ok "pass-through: files, symlinks shown as links (never followed by the daemon), no FIFOs"

# --- attributes: read-only modes, stable sizes and mtimes
[ "$(stat -c %a "$M/plain.gguf")" = 444 ] || fail "plain.gguf mode $(stat -c %a "$M/plain.gguf")"
[ "$(stat -c %Y "$M/plain.gguf")" = "$(stat -c %Y "$S/plain.gguf")" ] || fail "plain.gguf mtime"
[ "$(stat -c %Y "$M/single.gguf")" = "$(stat -c %Y "$S/single.gguf.zst")" ] || fail "single.gguf mtime"
[ "$(stat -c %s "$M/multi.gguf")" = "$(stat -c %s "$T/orig/multi.gguf")" ] || fail "multi.gguf size"
grep -q " $M fuse.modelfs ro," /proc/mounts || fail "not mounted read-only as fuse.modelfs: $(grep " $M " /proc/mounts)"
ok "attributes: 0444, mtimes of the sources, mounted ro as fuse.modelfs"

# --- writes: EROFS
for cmd in "echo x >'$M/new'" "echo x >>'$M/plain.gguf'" "touch '$M/plain.gguf'" "mkdir '$M/d'" \
    "rm '$M/plain.gguf'" "mv '$M/plain.gguf' '$M/p2'" "ln -s x '$M/l'" "chmod 600 '$M/plain.gguf'" \
    "setfattr -n user.x -v 1 '$M/plain.gguf'" "truncate -s 0 '$M/sub/readme.txt'"; do
    if err=$(timeout 10 bash -c "$cmd" 2>&1); then fail "write succeeded: $cmd"; fi
    case "$err" in *"Read-only file system"*) ;; *) fail "not EROFS: $cmd: $err" ;; esac
done
$PY -c "
import os, errno, sys
try:
    os.open(sys.argv[1], os.O_RDWR)
except OSError as e:
    sys.exit(0 if e.errno == errno.EROFS else 1)
sys.exit(1)" "$M/plain.gguf" || fail "open O_RDWR is not EROFS"
ok "writes fail with EROFS"

# --- stats
for k in read_requests bytes_served bytes_decoded cache_hits cache_misses decode_errors; do
    v=$(stat_of "$M" $k)
    [ -n "$v" ] || fail ".modelfs/stats has no $k"
done
[ "$(stat_of "$M" read_requests)" -gt 0 ] || fail "read_requests is 0"
ok ".modelfs/stats: $(tr '\n' ' ' <"$M/.modelfs/stats" | cut -c1-120)..."

alive "$DAEMON_PID" || fail "daemon died"
umount_fs "$M" "$DAEMON_PID"
ok "unmounted, daemon exited 0"
