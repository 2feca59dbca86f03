#!/usr/bin/python3
"""Write the handcrafted corrupt files of tests/data/corrupt/, one per failure mode the
readers handle. Each starts from a small valid file and breaks exactly one thing.

    scripts/make-corrupt.py [OUTDIR [MODELFS-PACK]]

GGUF files need nothing; the zstd ones are made from base.gguf with modelfs-pack (seekable
format, 4 KiB frames) and the zstd CLI. The expected error of each file is in
tests/data/corrupt/expected.txt (checked by test_gguf and test_sources).
"""
import os
import struct
import subprocess
import sys


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def tensor(name, dims, ggml_type, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ggml_type, offset)


def gguf(kvs, tensors, data=b"", align=32, version=3, magic=b"GGUF", n_kv=None, n_tensors=None):
    head = magic + struct.pack("<I", version)
    head += struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(tensors)
    head += b"\0" * (-len(head) % align)
    return head + data


NAME = kv("general.name", 8, s("tiny"))
ARCH = kv("general.architecture", 8, s("llama"))
F32 = 0


def files():
    ok_t = [tensor("a", [8], F32, 0), tensor("b", [4, 2], F32, 32)]
    data = bytes(range(64))
    yield "valid.gguf", gguf([ARCH, NAME], ok_t, data)
    full = gguf([ARCH, NAME], ok_t, data)
    yield "truncated-header.gguf", full[:100]  # inside the second key/value
    yield "bad-magic.gguf", gguf([NAME], [], magic=b"GGUX")
    yield "bad-version.gguf", gguf([NAME], [], version=1)
    yield "string-past-end.gguf", gguf([kv("general.name", 8, struct.pack("<Q", 1 << 40) + b"tiny")], [])
    yield "array-past-end.gguf", gguf([kv("tokens", 9, struct.pack("<IQ", 8, 1 << 33) + s("a"))], [])
    yield "huge-kv-count.gguf", gguf([NAME], [], n_kv=1 << 60)
    yield "huge-tensor-count.gguf", gguf([NAME], [], n_tensors=1 << 61)
    yield "unknown-value-type.gguf", gguf([kv("general.x", 13, b"\0" * 8)], [])
    yield "unknown-array-type.gguf", gguf([kv("general.x", 9, struct.pack("<IQ", 42, 1) + b"\0" * 8)], [])
    yield "bad-bool.gguf", gguf([kv("general.flag", 7, b"\x02")], [])
    deep = struct.pack("<IQ", 8, 0)
    for _ in range(9):
        deep = struct.pack("<IQ", 9, 1) + deep
    yield "arrays-too-deep.gguf", gguf([kv("general.deep", 9, deep)], [])
    yield "duplicate-key.gguf", gguf([NAME, NAME], [])
    yield "alignment-not-pow2.gguf", gguf([kv("general.alignment", 4, struct.pack("<I", 48))], [], align=48)
    yield "alignment-wrong-type.gguf", gguf([kv("general.alignment", 10, struct.pack("<Q", 64))], [])
    yield "tensor-outside-file.gguf", gguf([NAME], [tensor("a", [8], F32, 0), tensor("b", [4, 2], F32, 64)], data)
    yield "tensors-overlap.gguf", gguf([NAME], [tensor("a", [16], F32, 0), tensor("b", [4, 2], F32, 32)], data)
    yield "tensor-misaligned.gguf", gguf([NAME], [tensor("a", [8], F32, 4)], data)
    yield "tensor-unknown-type.gguf", gguf([NAME], [tensor("a", [8], 4, 0)], data)
    yield "tensor-too-many-dims.gguf", gguf([NAME], [tensor("a", [1, 1, 1, 1, 8], F32, 0)], data)
    yield "tensor-shape-overflow.gguf", gguf([NAME], [tensor("a", [1 << 32, 1 << 32], F32, 0)], data)
    yield "tensor-negative-dim.gguf", gguf([NAME], [tensor("a", [1 << 63], F32, 0)], data)
    yield "tensor-bad-block.gguf", gguf([NAME], [tensor("a", [33], 8, 0)], data)  # Q8_0: blocks of 32
    yield "duplicate-tensor.gguf", gguf([NAME], [tensor("a", [8], F32, 0), tensor("a", [8], F32, 32)], data)


def base_gguf():
    """A GGUF of ~14 KiB whose tensor data compresses (text-like), so every zstd frame holds
    compressed blocks and a flipped byte is a decoding error, not just different bytes."""
    words = [b"alpha ", b"beta ", b"gamma ", b"delta ", b"epsilon ", b"zeta "]
    data, x = bytearray(), 12345
    while len(data) < 12288:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        data += words[x % len(words)]
    data = bytes(data[:12288])
    ts = [tensor("a", [1024], F32, 0), tensor("b", [1024, 2], F32, 4096)]
    return gguf([ARCH, NAME], ts, data)


def zst_files(out, pack):
    base = base_gguf()
    path = os.path.join(out, "base.gguf")
    with open(path, "wb") as f:
        f.write(base)
    seekable = os.path.join(out, "base.gguf.zst")
    subprocess.run([pack, "-q", "-f", "--chunk", "4K", path, seekable], check=True)
    good = open(seekable, "rb").read()
    n = struct.unpack_from("<I", good, len(good) - 9)[0]
    table = len(good) - 9 - 12 * n  # first entry
    sizes = [struct.unpack_from("<I", good, table + 12 * i)[0] for i in range(n)]

    def patched(at, new):
        b = bytearray(good)
        b[at:at + len(new)] = new
        return bytes(b)

    yield "seek-table-count.gguf.zst", patched(len(good) - 9, struct.pack("<I", n + 1))
    yield "seek-table-reserved-bits.gguf.zst", patched(len(good) - 5, b"\x84")
    yield "seek-table-sizes.gguf.zst", patched(table, struct.pack("<I", sizes[0] + 1))
    # wrong checksum of frame 1 (the decoded bytes are fine): reads of frame 1 fail
    yield "wrong-checksum.gguf.zst", patched(table + 12 + 8, b"\0\0\0\0")
    # a byte in the middle of frame 1's compressed data: reads of frame 1 fail
    yield "corrupt-frame.gguf.zst", patched(sizes[0] + sizes[1] // 2, bytes([good[sizes[0] + sizes[1] // 2] ^ 0xFF]))
    single = subprocess.run(["zstd", "-q", "-c", "-3", path], check=True, capture_output=True).stdout
    yield "single.gguf.zst", single
    # two frames without a seek table, the second without a content size (zstd reading a pipe)
    half = len(base) // 2
    first = subprocess.run(["zstd", "-q", "-c", "-3"], input=base[:half], check=True, capture_output=True).stdout
    second = subprocess.run(["zstd", "-q", "-c", "-3", "--no-content-size"], input=base[half:], check=True,
                            capture_output=True).stdout
    yield "frames.gguf.zst", first + second
    yield "truncated-frame.gguf.zst", single[:len(single) // 2]
    yield "stray-bytes.gguf.zst", single + b"\0\1\2"
    # a frame header claiming 1 TiB for one raw block of 4 bytes (found by fuzz_zstd)
    lying = struct.pack("<IBB", 0xFD2FB528, 0xC0, 0x00) + struct.pack("<Q", 1 << 40)
    yield "lying-content-size.gguf.zst", lying + bytes([4 << 3 | 1, 0, 0]) + b"GGUF"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/corrupt"
    pack = sys.argv[2] if len(sys.argv) > 2 else "bin/modelfs-pack"
    os.makedirs(out, exist_ok=True)
    for name, blob in list(files()) + list(zst_files(out, pack)):
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
