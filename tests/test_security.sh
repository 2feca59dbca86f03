#!/bin/bash
# Security (issue 7, item 5), against the handcrafted files of scripts/make-malicious.py
# (tests/data/malicious/, plus the big ones it makes here):
# - tensor names and metadata with '/', '..', NUL, control characters or 64 KiB lengths are escaped
#   (NAME.tensors/ file names, NAME.meta lines, log lines) or rejected; nothing creates a path;
# - header sizes and the memory a header takes are capped;
# - symlinks in the source are shown as links and never followed by the daemon, also when a file
#   or a directory is swapped for a symlink while the daemon looks at it;
# - the mount is read-only; allow_other only when asked for, and then with default_permissions.
source "$(dirname "$0")/lib/mount.sh"

# The mount sits at another depth than the source, so that a relative symlink out of the source,
# seen in the mount, points nowhere: a read that gets outside bytes went through the daemon.
S=$T/src M=$T/m1/m2/mnt O=$T/outside
mkdir -p "$S" "$O" "$T/m1/m2"
cp "$ROOT"/tests/data/malicious/*.gguf "$S/"
$PY "$ROOT/scripts/make-malicious.py" --big "$S"
gen "$O/secret.gguf" --seed 6 --dim 32 --layers 2
cp "$O/secret.gguf" "$O/m.gguf"
gen "$T/good.gguf" --seed 5 --dim 32 --layers 1
ln -s ../outside/secret.gguf "$S/rel-out.gguf"    # looks like a model
ln -s "$O/secret.gguf" "$S/abs-out.gguf"
ln -s ../outside "$S/dir-out"
ln -s /etc/passwd "$S/passwd"
mkdir "$S/sub"
ln -s ../../outside/m.gguf "$S/sub/m.gguf"

mount_fs "$S" "$M" -o cache=16M

# --- names: every tensor file name is one path component, escaped, and maps back to its tensor
$PY - "$M" <<'PYEOF' || fail "tensor names"
import errno, os, re, sys
mnt = sys.argv[1]
d = os.path.join(mnt, "names.tensors")
names = sorted(os.listdir(d))
bad = [n for n in names if "/" in n or n in (".", "..") or n.startswith(".") or re.search(r"[\x00-\x1f\x7f]", n)
       or len(n.encode("utf-8", "surrogateescape")) > 255]
assert not bad, "unsafe names listed: %r" % bad
# 20 tensors; two have no file (their escaped names are over NAME_MAX)
assert len(names) == 18, "%d tensor files: %r" % (len(names), names)
want = {"a%2Fb", "%2E.%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2E.", "%2E", "%2Ehidden", "%252F", "line%0Abreak",
        "tab%09here", "%1B[31mred%1B[0m", "%1B]0;owned%07", "del%7F", "back\\slash", "%2Fabsolute",
        "dir%2F..%2F..%2Fup", "caf\u00e9", "\udcff\udcfe not utf-8", "x" * 255, "%2F" * 85}
missing = want - set(names)
assert not missing, "missing %r; have %r" % (missing, names)
# tensor i is filled with byte i: each file holds its own tensor's bytes
order = ["a%2Fb", "%2E.%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2E.", "%2E", "%2Ehidden", "%252F", "line%0Abreak",
         "tab%09here", "%1B[31mred%1B[0m", "%1B]0;owned%07", "del%7F", "back\\slash", "%2Fabsolute",
         "dir%2F..%2F..%2Fup", "caf\u00e9", "\udcff\udcfe not utf-8", "x" * 255, None, "%2F" * 85]
for i, n in enumerate(order):
    if n is None:  # "y" * 256: no file
        continue
    data = open(os.path.join(d, n), "rb").read()
    assert data == bytes([i]) * 32, "%r: wrong bytes" % n
    assert os.getxattr(os.path.join(d, n), "user.ggml.type") == b"F32"
    assert os.getxattr(os.path.join(d, n), "user.ggml.shape") == b"[8]"
# names that are not escaped forms, or that would walk out, do not resolve
for n in ("a", "a/b", "..%2F", "%2", "%zz", "line\nbreak", "%2e.", "y" * 256):
    try:
        os.stat(os.path.join(d, n))
        raise SystemExit("%r resolves" % n)
    except OSError as e:
        assert e.errno in (errno.ENOENT, errno.ENAMETOOLONG), (n, e)
# nothing was created beside the views
assert not os.path.exists(os.path.join(mnt, "etc")) and not os.path.exists(os.path.join(mnt, "up"))
PYEOF
ok "names.gguf: 18 tensor files, every name one escaped component holding its tensor; 2 over NAME_MAX have none (and do not hide the ones after them)"

# --- NAME.meta: one line per key and per tensor, control characters as \xHH, long names cut
$PY - "$M/names.meta" "$M/tensor-name-64k.meta" <<'PYEOF' || fail "NAME.meta"
import re, sys
meta = open(sys.argv[1], "rb").read()
assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", meta), "raw control characters in names.meta"
lines = meta.split(b"\n")
assert not any(l.startswith(b"fake.key") or l.startswith(b"forged") for l in lines), "forged lines"
assert lines.count(b"[tensors] 20") == 1 and not any(l == b"[tensors] 0" or l == b"[tensors] 1" for l in lines)
assert b"evil.newline\\x0a[tensors] 0\\x0afake.key = \"x\"" in lines
assert b'evil.value = "first\\n[tensors] 1\\nforged  F32  [8]  0  32"' in lines
assert any(l.startswith(b"line\\x0abreak ") for l in lines)
assert any(l.startswith(b"\\x1b[31mred\\x1b[0m ") for l in lines)
m = re.search(rb"^k{256}\.\.\. \(65535 bytes\) = ", meta, re.M)
assert m, "the 64 KiB key is not cut short"
assert max(len(l) for l in lines) < 4096, "a line of %d bytes" % max(len(l) for l in lines)
meta2 = open(sys.argv[2], "rb").read()
assert re.search(rb"^n{256}\.\.\. \(65535 bytes\) ", meta2, re.M) and b"\nshort " in meta2
PYEOF
ok "NAME.meta: no raw control characters, no forged lines, 64 KiB names cut to 256 bytes"

# --- rejected: NUL in a name or key, names over 65535 bytes, headers over the caps: plain files
for f in nul-in-tensor-name.gguf nul-in-key.gguf key-too-long.gguf tensor-name-too-long.gguf \
    header-over-cap.gguf many-empty-strings.gguf header-over-cap.safetensors; do
    [ -f "$M/$f" ] || fail "$f is not shown as a plain file"
    b=${f%.gguf}
    [ -e "$M/$b.tensors" ] && fail "$f: $b.tensors shown"
    cmp -s <(head -c 1000000 "$M/$f") <(head -c 1000000 "$S/$f") || fail "$f: bytes differ from the source"
done
grep -q "nul-in-tensor-name.gguf: tensor 0: name contains a NUL byte" "$T/daemon.log" || fail "NUL in a tensor name: not logged"
grep -q "nul-in-key.gguf: key 0: name contains a NUL byte" "$T/daemon.log" || fail "NUL in a key: not logged"
grep -q "header-over-cap.gguf: general.blob: string of 67112960 bytes: header larger than 64 MiB" "$T/daemon.log" ||
    fail "64 MiB header cap: not logged"
grep -q "many-empty-strings.gguf: header would take more than 64 MiB of memory" "$T/daemon.log" ||
    fail "header memory cap: not logged"
rss_within $(((16 + 32) * 1024)) || fail "daemon VmHWM $HWM kB after parsing the big headers (cache 16M)"
ok "NUL in names, names over 64 KiB, headers over 64 MiB or over 64 MiB of memory: plain files, logged; daemon VmHWM ${HWM} kB"

# --- the log: one line per message, no control characters from names
$PY - "$T/daemon.log" <<'PYEOF' || fail "log lines"
import re, sys
log = open(sys.argv[1], "rb").read()
assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", log), "raw control characters in the log"
for l in log.split(b"\n"):
    assert not l or l.startswith(b"modelfs: "), "a log line not from modelfs: %r" % l[:80]
PYEOF
ok "daemon log: every line a modelfs line, no control characters"

# --- symlinks: shown as links with their targets, never followed by the daemon
for l in rel-out.gguf abs-out.gguf dir-out passwd sub/m.gguf; do
    [ -L "$M/$l" ] || fail "$l is not shown as a symlink"
    [ "$(readlink "$M/$l")" = "$(readlink "$S/$l")" ] || fail "$l: target differs"
done
for v in rel-out.tensors rel-out.meta abs-out.tensors sub/m.tensors sub/m.meta; do
    [ -e "$M/$v" ] && fail "$v shown for a symlink"
done
# relative targets point nowhere from the mount (another depth): the daemon did not follow them
[ -e "$M/rel-out.gguf" ] && fail "rel-out.gguf resolves in the mount"
[ -e "$M/sub/m.gguf" ] && fail "sub/m.gguf resolves in the mount"
ok "symlinks out of the source: shown as links with the same targets, no views, not followed"

# --- a file or a directory swapped for a symlink out of the tree while the daemon looks at it
timeout 120 $PY "$ROOT/tests/lib/symlink_race.py" "$S" "$M" "$O" "$T/good.gguf" "${MFS_RACE_SECONDS:-10}" >"$T/race.out" ||
    { cat "$T/race.out"; fail "the daemon served bytes from outside the source"; }
secret_size=$(stat -c %s "$O/secret.gguf")
grep -q "race.gguf: GGUF v3, .* $secret_size bytes" "$T/daemon.log" && fail "the daemon opened the outside model"
grep -q "racedir/m.gguf: GGUF v3, .* $secret_size bytes" "$T/daemon.log" && fail "the daemon opened the outside model"
refused=$(grep -c "a symlink on the way (not followed)" "$T/daemon.log" || true)
alive "$DAEMON_PID" || fail "daemon died"
ok "swap race: $(tail -1 "$T/race.out"); the daemon refused $refused symlinks that appeared between its lstat and its open"

# --- read-only: every kind of write fails with EROFS, the source is untouched
before=$(cd "$S" && ls -la --time-style=full-iso | md5sum)
$PY - "$M" <<'PYEOF' || fail "writes"
import errno, os, sys
m = sys.argv[1]
f = os.path.join(m, "names.gguf")
t = os.path.join(m, "names.tensors", "a%2Fb")
tries = {
    "open O_WRONLY": lambda: os.open(f, os.O_WRONLY),
    "open O_RDWR": lambda: os.open(t, os.O_RDWR),
    "open O_TRUNC": lambda: os.open(f, os.O_RDONLY | os.O_TRUNC),
    "create": lambda: os.open(os.path.join(m, "new"), os.O_WRONLY | os.O_CREAT, 0o644),
    "mkdir": lambda: os.mkdir(os.path.join(m, "d")),
    "unlink": lambda: os.unlink(f),
    "rmdir": lambda: os.rmdir(os.path.join(m, "sub")),
    "rename": lambda: os.rename(f, os.path.join(m, "x.gguf")),
    "symlink": lambda: os.symlink("/etc/passwd", os.path.join(m, "l")),
    "link": lambda: os.link(f, os.path.join(m, "h")),
    "chmod": lambda: os.chmod(f, 0o777),
    "chown": lambda: os.chown(f, 1, 1),
    "utime": lambda: os.utime(f, (0, 0)),
    "truncate": lambda: os.truncate(t, 0),
    "setxattr": lambda: os.setxattr(t, "user.ggml.type", b"F16"),
    "removexattr": lambda: os.removexattr(t, "user.ggml.type"),
    "mknod": lambda: os.mkfifo(os.path.join(m, "fifo")),
}
bad = 0
for what, fn in tries.items():
    try:
        fn()
        print("%s succeeded" % what)
        bad += 1
    except OSError as e:
        if e.errno != errno.EROFS:
            print("%s: %s, want EROFS" % (what, e.strerror))
            bad += 1
sys.exit(1 if bad else 0)
PYEOF
[ "$(cd "$S" && ls -la --time-style=full-iso | md5sum)" = "$before" ] || fail "the source changed"
opts=$(awk -v m="$M" '$5 == m { print $6 }' /proc/self/mountinfo)
case ",$opts," in *,ro,*) ;; *) fail "mount options '$opts' lack ro" ;; esac
case ",$opts," in *,nosuid,*) ;; *) fail "mount options '$opts' lack nosuid" ;; esac
case ",$opts," in *,nodev,*) ;; *) fail "mount options '$opts' lack nodev" ;; esac
ok "read-only: 17 kinds of write fail with EROFS; mounted $opts"

# --- allow_other: off unless asked for; when asked, with default_permissions
chmod 755 "$T" "$T/m1" "$T/m1/m2" "$S"
cp "$T/good.gguf" "$S/private.gguf"
chmod 600 "$S/private.gguf"
sopts=$(awk -v m="$M" '$5 == m { print $NF }' /proc/self/mountinfo)
case ",$sopts," in *,allow_other,*) fail "allow_other without being asked: $sopts" ;; esac
as_nobody() { timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_nobody cat "$M/names.gguf" >/dev/null 2>&1 && fail "another user reads the mount without allow_other"
ok "without allow_other: another user is refused ($sopts)"
umount_fs "$M" "$DAEMON_PID"

mount_fs "$S" "$M" -o allow_other
sopts=$(awk -v m="$M" '$5 == m { print $NF }' /proc/self/mountinfo)
case ",$sopts," in *,allow_other,*) ;; *) fail "allow_other asked for, not in '$sopts'" ;; esac
case ",$sopts," in *,default_permissions,*) ;; *) fail "allow_other without default_permissions: '$sopts'" ;; esac
as_nobody cmp -s "$M/names.gguf" "$S/names.gguf" || fail "another user cannot read a 0644 model with allow_other"
wait_until 10 test -e "$M/private.gguf" || fail "private.gguf not shown"
as_nobody cat "$M/private.gguf" >/dev/null 2>&1 && fail "another user reads a 0600 model"
as_nobody cat "$M/private.meta" >/dev/null 2>&1 && fail "another user reads a 0600 model's meta"
as_nobody ls "$M/private.tensors" >/dev/null 2>&1 && fail "another user lists a 0600 model's tensors"
cmp -s "$M/private.gguf" "$T/good.gguf" || fail "root cannot read private.gguf"
ok "allow_other: with default_permissions ($sopts); another user reads 0644 models, not a 0600 one nor its views"
umount_fs "$M" "$DAEMON_PID"
