"""Fault injection for test_mount_damaged.sh: damaged copies of a model source, and the check of
what the mount makes of them.

    damage.py make FORMAT SOURCE OUTDIR SEED
        OUTDIR/tNN (20 truncations) and OUTDIR/fNN (50 one-bit flips) of SOURCE, named with the
        format's suffix. Truncation points: 10 evenly spaced (0 included) and 10 random; flips: 20
        anywhere, 20 in the first 16 KiB (headers), 10 in the last 1 KiB (seek tables, indexes,
        safetensors' end). FORMAT hf: SOURCE is a checkpoint directory; each variant is a copy of it
        with its first shard damaged. Deterministic for a SEED.
    damage.py check FORMAT MNTDIR OUTDIR ORIG
        Every variant: either not presented as a model and passed through with its exact bytes, or
        presented as tNN.gguf whose every 64 KiB read returns bytes or EIO (no other error, no hang,
        the same bytes twice). Plain GGUF: the bytes are the variant's. Checksummed compressed
        formats (zstd frames, seekable, container): every byte read equals the original GGUF (ORIG)
        at that offset and nothing past its end reads. Prints one JSON line of counts; exit 1 on a
        violation.
"""
import errno
import json
import os
import random
import shutil
import sys

SUFFIX = {"gguf": ".gguf", "seekable": ".gguf.zst", "frames": ".gguf.zst", "single": ".gguf.zst",
          "container": ".mfz", "safetensors": ".safetensors", "hf": ""}
CHECKSUMMED = ("seekable", "frames", "single", "container")
CHUNK = 65536


def variants(size, rng):
    cuts = sorted(set([size * k // 10 for k in range(10)] + [rng.randrange(1, size) for _ in range(10)]))
    while len(cuts) < 20:
        cuts.append(rng.randrange(1, size))
        cuts = sorted(set(cuts))
    flips = [rng.randrange(size) for _ in range(20)]
    flips += [rng.randrange(min(size, 16384)) for _ in range(20)]
    flips += [size - 1 - rng.randrange(min(size, 1024)) for _ in range(10)]
    return cuts[:20], [(o, rng.randrange(8)) for o in flips]


def make(fmt, source, out, seed):
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    if fmt == "hf":
        shard = sorted(f for f in os.listdir(source) if f.endswith(".safetensors"))[0]
        data = open(os.path.join(source, shard), "rb").read()
    else:
        data = open(source, "rb").read()
    cuts, flips = variants(len(data), rng)
    damaged = [("t%02d" % i, data[:c]) for i, c in enumerate(cuts)]
    for i, (o, bit) in enumerate(flips):
        b = bytearray(data)
        b[o] ^= 1 << bit
        damaged.append(("f%02d" % i, bytes(b)))
    for name, b in damaged:
        if fmt == "hf":
            d = os.path.join(out, name)
            shutil.copytree(source, d)
            with open(os.path.join(d, shard), "wb") as f:
                f.write(b)
        else:
            with open(os.path.join(out, name + SUFFIX[fmt]), "wb") as f:
                f.write(b)
    return 0


def read_all(path):
    """[(offset, bytes | errno)]: reads of up to CHUNK bytes from offset 0 to the size from fstat.
    A read that fails part way returns the bytes before the failing page (a short read); the next
    read, at that page, fails: after an error, reading goes on at the next page."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        out = []
        pos = 0
        while pos < size:
            try:
                b = os.pread(fd, min(CHUNK, size - pos), pos)
                if not b:
                    out.append((pos, "end of file before the size in stat"))
                    break
                out.append((pos, b))
                pos += len(b)
            except OSError as e:
                out.append((pos, e.errno))
                pos = (pos // 4096 + 1) * 4096
        # and past the end: nothing
        try:
            tail = os.pread(fd, CHUNK, size)
            if tail:
                out.append((size, "data past the end"))
        except OSError as e:
            out.append((size, e.errno))
        return size, out
    finally:
        os.close(fd)


def same_tree(a, b):
    """Do directories a (in the mount) and b (the source) hold the same names and file bytes? A
    healthy shard X.safetensors of a checkpoint that failed is a lone safetensors file, shown as
    X.gguf with X.meta and X.tensors instead of its own name."""
    na, nb = set(os.listdir(a)), set(os.listdir(b))
    for n in sorted(nb):
        views = {n[:-len(".safetensors")] + v for v in (".gguf", ".meta", ".tensors")}
        if n.endswith(".safetensors") and n not in na and views <= na:
            na -= views
            nb.discard(n)
    if na != nb:
        return "names differ: %r vs %r" % (sorted(na), sorted(nb))
    for n in sorted(na):
        pa, pb = os.path.join(a, n), os.path.join(b, n)
        if os.path.isfile(pb) and open(pa, "rb").read() != open(pb, "rb").read():
            return "%s: bytes differ" % n
    return None


def check(fmt, mnt, out, orig_path):
    orig = open(orig_path, "rb").read()
    counts = {"variants": 0, "passed_through": 0, "model_clean": 0, "model_eio": 0, "model_changed": 0,
              "eio_reads": 0}
    bad = []
    for name in sorted(os.listdir(out)):
        if not (name.startswith("t") or name.startswith("f")) or not name[1:3].isdigit():
            continue  # not a variant (the test's healthy models)
        counts["variants"] += 1
        src = os.path.join(out, name)
        base = name[:-len(SUFFIX[fmt])] if SUFFIX[fmt] else name
        gguf = os.path.join(mnt, base + ".gguf")
        is_model = os.path.exists(os.path.join(mnt, base + ".meta"))
        try:
            if not is_model:
                counts["passed_through"] += 1
                if fmt == "hf":
                    why = same_tree(os.path.join(mnt, name), src)
                    if why:
                        bad.append("%s: passed through, but %s" % (name, why))
                    if os.path.exists(gguf):
                        bad.append("%s: %s.gguf shown without %s.meta" % (name, base, base))
                else:
                    if open(os.path.join(mnt, name), "rb").read() != open(src, "rb").read():
                        bad.append("%s: passed through with other bytes" % name)
                    if fmt != "gguf" and os.path.exists(gguf):
                        bad.append("%s: %s.gguf shown without %s.meta" % (name, base, base))
                continue
            size, pieces = read_all(gguf)
            size2, pieces2 = read_all(gguf)
            if (size, pieces) != (size2, pieces2):
                bad.append("%s: two reads differ" % name)
            errs = [p for p in pieces if not isinstance(p[1], bytes)]
            other = [p for p in errs if p[1] != errno.EIO]
            if other:
                bad.append("%s: %s at %d (only EIO allowed)" % (name, other[0][1] if isinstance(other[0][1], str)
                                                                else errno.errorcode.get(other[0][1]), other[0][0]))
            counts["eio_reads"] += len(errs)
            data = [p for p in pieces if isinstance(p[1], bytes)]
            if fmt == "gguf":
                if errs or b"".join(p[1] for p in data) != open(src, "rb").read():
                    bad.append("%s: a parsed GGUF is not served as its own bytes" % name)
            elif fmt in CHECKSUMMED:
                for off, b in data:
                    if off + len(b) > len(orig) or b != orig[off:off + len(b)]:
                        bad.append("%s: wrong bytes at [%d, +%d) (size %d, original %d)" % (name, off, len(b), size,
                                                                                            len(orig)))
                        break
            if errs:
                counts["model_eio"] += 1
            elif size == len(orig) and b"".join(p[1] for p in data) == orig:
                counts["model_clean"] += 1
            else:
                counts["model_changed"] += 1
                if os.environ.get("DAMAGE_VERBOSE"):
                    print("changed %s: size %d (original %d)" % (name, size, len(orig)))
        except OSError as e:
            bad.append("%s: %s" % (name, e))
    counts["format"] = fmt
    print(json.dumps(counts))
    for b in bad[:20]:
        print("VIOLATION " + b)
    return 1 if bad else 0


def main(argv):
    if len(argv) == 6 and argv[1] == "make":
        return make(argv[2], argv[3], argv[4], int(argv[5]))
    if len(argv) == 6 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4], argv[5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
