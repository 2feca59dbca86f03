#!/usr/bin/python3
"""check_view.py MOUNTDIR NAME ORIG.gguf [--align N]: check what a mount shows for one model.

MOUNTDIR/NAME.gguf parses as a GGUF holding the original's metadata and tensors (byte-identical,
by name); with --align every tensor sits on an N-byte boundary, else the file is the original
byte for byte. MOUNTDIR/NAME.tensors/ holds one file per tensor (reversibly escaped name, no '/',
no leading '.') equal to its slice, with xattrs user.ggml.type, user.ggml.shape, user.gguf.offset.
MOUNTDIR/NAME.meta names every metadata key and every tensor. Exit 1 with one line per problem."""
import os
import re
import sys

import mfsgguf

problems = []


def bad(msg):
    problems.append(msg)
    print("check_view: " + msg, file=sys.stderr)


def unescape(fname):
    out = bytearray()
    i = 0
    b = fname.encode("utf-8", "surrogateescape")
    while i < len(b):
        if b[i:i + 1] == b"%":
            h = b[i + 1:i + 3]
            if not re.fullmatch(rb"[0-9A-Fa-f]{2}", h):
                raise ValueError("bad escape in %r" % fname)
            out.append(int(h, 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def main(argv):
    mnt, name, orig_path = argv[:3]
    align = int(argv[argv.index("--align") + 1]) if "--align" in argv else 0
    gguf = os.path.join(mnt, name + ".gguf")
    tdir = os.path.join(mnt, name + ".tensors")
    meta = os.path.join(mnt, name + ".meta")
    orig = mfsgguf.GGUFReader(orig_path)
    view = mfsgguf.GGUFReader(gguf)

    # metadata: the same keys and values, except the alignment when re-laid out
    okv = {kv.key: kv for kv in orig.kvs}
    vkv = {kv.key: kv for kv in view.kvs}
    for k in set(okv) | set(vkv):
        if align and k == "general.alignment":
            continue
        if k not in okv or k not in vkv:
            bad("%s: key %s only in %s" % (gguf, k, "the original" if k in okv else "the mount"))
        elif okv[k].vtype != vkv[k].vtype or okv[k].value != vkv[k].value:
            bad("%s: key %s differs" % (gguf, k))
    if [t.name for t in orig.tensors] != [t.name for t in view.tensors]:
        bad("%s: tensor names or order differ" % gguf)
    if align:
        if view.alignment != align:
            bad("%s: alignment %d, want %d" % (gguf, view.alignment, align))
        if view.data_offset % align:
            bad("%s: data offset %d not %d-aligned" % (gguf, view.data_offset, align))
    else:
        if view.file_size != orig.file_size or view.data_offset != orig.data_offset:
            bad("%s: size or data offset differs from the original" % gguf)

    # tensors: bytes, NAME.tensors/ files, xattrs
    try:
        files = os.listdir(tdir)
    except OSError as e:
        bad("%s: %s" % (tdir, e))
        files = []
    by_name = {}
    for f in files:
        if "/" in f or f.startswith("."):
            bad("%s: unsafe file name %r" % (tdir, f))
        try:
            by_name[unescape(f)] = f
        except ValueError as e:
            bad("%s: %s" % (tdir, e))
    if len(by_name) != len(view.tensors) or len(files) != len(view.tensors):
        bad("%s: %d files for %d tensors" % (tdir, len(files), len(view.tensors)))
    for t in view.tensors:
        o = orig.tensor(t.name)
        abs_off = view.data_offset + t.offset
        if align and abs_off % align:
            bad("%s: tensor %s at %d, not %d-aligned" % (gguf, t.name, abs_off, align))
        if t.ne != o.ne or t.ggml_type != o.ggml_type or t.nbytes != o.nbytes:
            bad("%s: tensor %s info differs" % (gguf, t.name))
            continue
        want = orig.tensor_bytes(o).tobytes()
        if view.tensor_bytes(t).tobytes() != want:
            bad("%s: tensor %s bytes differ" % (gguf, t.name))
        f = by_name.get(t.name)
        if f is None:
            bad("%s: no file for tensor %s" % (tdir, t.name))
            continue
        p = os.path.join(tdir, f)
        st = os.stat(p)
        if st.st_size != t.nbytes:
            bad("%s: size %d, want %d" % (p, st.st_size, t.nbytes))
        with open(p, "rb") as fh:
            if fh.read() != want:
                bad("%s: bytes differ from the tensor" % p)
        xa = {}
        try:
            for k in os.listxattr(p):
                xa[k] = os.getxattr(p, k).decode()
        except OSError as e:
            bad("%s: xattrs: %s" % (p, e))
        shape = "[" + ", ".join(str(x) for x in t.ne) + "]"
        want_x = {"user.ggml.type": mfsgguf.type_name(t.ggml_type), "user.ggml.shape": shape,
                  "user.gguf.offset": str(abs_off)}
        for k, v in want_x.items():
            if xa.get(k) != v:
                bad("%s: %s = %r, want %r" % (p, k, xa.get(k), v))

    # NAME.meta: every key and tensor named
    try:
        with open(meta, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8", "replace")
        if len(raw) != os.stat(meta).st_size:
            bad("%s: size in stat differs from the bytes read" % meta)
        lines = text.splitlines()
        # keys and tensor names as NAME.meta prints them: control characters and backslash as \xHH
        def shown(name):
            return "".join("\\x%02x" % ord(c) if ord(c) < 0x20 or c in "\x7f\\" else c for c in name)
        for k in okv:
            if not any(line.startswith(shown(k) + " = ") or line.startswith(shown(k) + " =") for line in lines):
                bad("%s: no line for key %s" % (meta, k))
        for t in orig.tensors:
            if shown(t.name) not in text:
                bad("%s: tensor %s not listed" % (meta, t.name))
    except OSError as e:
        bad("%s: %s" % (meta, e))
    view.close()
    orig.close()
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.stderr.write("usage: check_view.py MOUNTDIR NAME ORIG.gguf [--align N]\n")
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
