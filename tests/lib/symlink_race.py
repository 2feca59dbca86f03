"""Swap source entries between the real thing and a symlink out of the source tree, as fast as
possible, while reading through the mount; fail if the mount ever serves bytes from outside.

    symlink_race.py SRC MNT OUTSIDE GOOD SECONDS

SRC/race.gguf alternates between a copy of GOOD (hard link from a staging file) and a relative
symlink to OUTSIDE/secret.gguf; SRC/racedir/ alternates between a real directory holding m.gguf
(GOOD) and a relative symlink to OUTSIDE (which holds m.gguf = the secret). MNT must sit at another
depth than SRC, so that the links, seen in the mount, point nowhere. The reader lists, stats and reads the mount's
race.gguf and racedir/m.gguf without following a symlink at the last component; anything it reads
must be GOOD's bytes, and no regular file may show the secret's size (the two differ in size, so
that the daemon's log tells the two apart too). Prints counts; exit 1 if a secret byte came through.
"""
import errno
import os
import sys
import threading
import time

src, mnt, outside, good, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
good_bytes = open(good, "rb").read()
secret_bytes = open(os.path.join(outside, "secret.gguf"), "rb").read()
assert len(good_bytes) != len(secret_bytes)
stage = os.path.join(src, "..", "stage")
os.makedirs(stage, exist_ok=True)
os.makedirs(os.path.join(stage, "dir"), exist_ok=True)
with open(os.path.join(stage, "good.gguf"), "wb") as f:
    f.write(good_bytes)
with open(os.path.join(stage, "dir", "m.gguf"), "wb") as f:
    f.write(good_bytes)
stop = time.monotonic() + seconds
swaps = [0]


def swapper():
    i = 0
    while time.monotonic() < stop:
        i += 1
        tmp = os.path.join(src, ".swap")
        tmpd = os.path.join(src, ".swapd")
        if i % 2:
            # relative targets: from SRC they reach OUTSIDE; from MNT (at another depth) they
            # reach nothing, so a read that gets the secret went through the daemon
            os.symlink(os.path.relpath(os.path.join(outside, "secret.gguf"), src), tmp)
            os.symlink(os.path.relpath(outside, src), tmpd)
        else:
            os.link(os.path.join(stage, "good.gguf"), tmp)
            os.mkdir(tmpd)
            os.link(os.path.join(stage, "dir", "m.gguf"), os.path.join(tmpd, "m.gguf"))
        os.rename(tmp, os.path.join(src, "race.gguf"))
        # a directory cannot be renamed over a symlink or a non-empty directory: move the old
        # one away first (a short gap with no racedir at all)
        old = os.path.join(src, ".old")
        try:
            os.rename(os.path.join(src, "racedir"), old)
        except FileNotFoundError:
            pass
        os.rename(tmpd, os.path.join(src, "racedir"))
        if os.path.islink(old):
            os.unlink(old)
        elif os.path.isdir(old):
            os.unlink(os.path.join(old, "m.gguf"))
            os.rmdir(old)
        swaps[0] += 1


counts = {"good": 0, "link": 0, "error": 0, "secret": 0}


def read_nofollow(path):
    try:
        st = os.lstat(path)
        if st.st_size == len(secret_bytes) and not os.path.islink(path):
            counts["secret"] += 1
            print("SECRET's size shown at %s" % path)
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        counts["link" if e.errno == errno.ELOOP else "error"] += 1
        return
    try:
        data = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            data += b
    except OSError:
        counts["error"] += 1
        return
    finally:
        os.close(fd)
    if data == good_bytes:
        counts["good"] += 1
    elif secret_bytes[:4096] in data or data[:4096] == secret_bytes[:4096] or data == secret_bytes:
        counts["secret"] += 1
        print("SECRET served at %s" % path)
    else:
        counts["error"] += 1  # a read that raced a replacement (ESTALE/short): not a leak


t = threading.Thread(target=swapper)
t.start()
while time.monotonic() < stop:
    try:
        os.listdir(mnt)
    except OSError:
        pass
    read_nofollow(os.path.join(mnt, "race.gguf"))
    read_nofollow(os.path.join(mnt, "racedir", "m.gguf"))
t.join()
print("%d swaps; reads: %d good, %d links, %d errors, %d secret" % (swaps[0], counts["good"], counts["link"],
                                                                   counts["error"], counts["secret"]))
sys.exit(1 if counts["secret"] else 0)
