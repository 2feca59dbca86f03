#!/usr/bin/python3
"""Write the handcrafted malicious sources of tests/data/malicious/: files a stranger could hand a
modelfs user, each aimed at one way names, sizes or paths from a file could escape their place
(a NAME.tensors/ file name, an xattr, a NAME.meta line, a log line, a path, the daemon's memory).
tests/test_security.sh mounts them; docs/RELIABILITY.md lists what each one tries.

    scripts/make-malicious.py [OUTDIR]          the small files (committed)
    scripts/make-malicious.py --big OUTDIR      files over the header caps (sparse, ~65-100 MB of
                                                apparent size; made by the test, not committed)
"""
import json
import os
import struct
import sys

F32 = 0


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def kv_str(key, value):
    return kv(key, 8, s(value))


def tensor(name, dims, ggml_type, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ggml_type, offset)


def gguf(kvs, names, align=32):
    """A valid GGUF v3 whose tensors are F32 [8] named `names`, tensor i filled with byte i."""
    ts = [tensor(n, [8], F32, 32 * i) for i, n in enumerate(names)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(kvs)) + b"".join(kvs) + b"".join(ts)
    head += b"\0" * (-len(head) % align)
    data = b"".join(bytes([i & 0xFF]) * 32 for i in range(len(names)))
    return head + data


# Tensor names that must never become paths or break a line: each is escaped (%XX) in
# NAME.tensors/, printed with \xHH in NAME.meta, and logged with '?'.
EVIL_NAMES = [
    b"a/b",                       # a path separator
    b"../../../../etc/passwd",    # a path out of the mount
    b"..",                        # the parent directory
    b".",                         # the directory itself
    b".hidden",                   # a leading dot
    b"%2F",                       # looks escaped already
    b"line\nbreak",               # a newline in NAME.meta / the log
    b"tab\there",
    b"\x1b[31mred\x1b[0m",        # a terminal escape sequence
    b"\x1b]0;owned\x07",          # an xterm title escape
    b"del\x7f",
    b"back\\slash",
    b"/absolute",
    b"dir/../../up",
    b"caf\xc3\xa9",               # UTF-8: shown as it is
    b"\xff\xfe not utf-8",        # not UTF-8: shown as bytes, never interpreted
    b"x" * 255,                   # NAME_MAX exactly
    b"y" * 256,                   # one over NAME_MAX: no tensor file, still in NAME.meta
    b"/" * 85,                    # escapes to 255 bytes
    b"/" * 86,                    # escapes to 258 bytes: no tensor file
]

EVIL_KEYS = [
    kv_str("general.architecture", "llama"),
    kv_str("evil.newline\n[tensors] 0\nfake.key", "x"),              # a key that would forge lines
    kv_str("evil.value", "first\n[tensors] 1\nforged  F32  [8]  0  32"),  # a value that would
    kv_str("evil.escape\x1b[2J", "\x1b]0;owned\x07"),
    kv_str("evil.path", "../../../../etc/passwd"),
    kv(("k" * 65535), 8, s("a key of 65535 bytes, the limit")),
    kv_str("evil.long", "v" * 65536),                                 # a 64 KiB value
    kv("evil.array", 9, struct.pack("<IQ", 8, 3) + s("a\nb") + s("\x00nul") + s("/x/../y")),
]


def small_files():
    yield "names.gguf", gguf(EVIL_KEYS, EVIL_NAMES)
    # A NUL inside a name or a key: rejected by the parser (a C string would cut it short, and a
    # file name could not hold it): the file is passed through as it is.
    yield "nul-in-tensor-name.gguf", gguf([], [b"a\0b"])
    yield "nul-in-key.gguf", gguf([kv_str("general.na\0me", "x")], [b"a"])
    # Over the 65535-byte limit of a key and of a tensor name: rejected.
    yield "key-too-long.gguf", gguf([kv_str("k" * 65536, "x")], [b"a"])
    yield "tensor-name-too-long.gguf", gguf([], [b"n" * 65536])
    # A 64 KiB tensor name within the limit: no tensor file (over NAME_MAX), one meta line.
    yield "tensor-name-64k.gguf", gguf([], [b"n" * 65535, b"short"])


def big_files(out):
    """Over the caps, as sparse files: the bytes past the written prefix are zeros."""
    cap = 64 << 20

    def sparse(name, prefix, size):
        with open(os.path.join(out, name), "wb") as f:
            f.write(prefix)
            f.truncate(size)

    # A string value longer than the 64 MiB GGUF header cap (the file is big enough to hold it).
    n = cap + 4096
    sparse("header-over-cap.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("general.blob")
           + struct.pack("<I", 8) + struct.pack("<Q", n), 24 + 8 + 12 + 4 + 8 + n + 64)
    # Just under the cap: an array of 8,000,000 empty strings (8 zero bytes each, 61 MiB). Each
    # costs a string slot in memory: the parser's memory cap must stop this one, or the daemon
    # holds hundreds of MiB for one small-looking file.
    count = 8000000
    prefix = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, count)
    size = len(prefix) + 8 * count
    sparse("many-empty-strings.gguf", prefix, size + (-size % 32))
    # A safetensors header of 100 MB + 1 (its cap is 100 MB), made of spaces after '{}'.
    hlen = 100000001
    with open(os.path.join(out, "header-over-cap.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", hlen) + b"{}" + b" " * (hlen - 2))


def main(argv):
    big = "--big" in argv
    argv = [a for a in argv if a != "--big"]
    here = os.path.dirname(os.path.abspath(__file__))
    out = argv[1] if len(argv) > 1 else os.path.join(here, "..", "tests", "data", "malicious")
    os.makedirs(out, exist_ok=True)
    if big:
        big_files(out)
        return 0
    for name, data in small_files():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
