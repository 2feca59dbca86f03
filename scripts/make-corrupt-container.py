#!/usr/bin/python3
"""Write the handcrafted containers of tests/data/container/, one per failure mode the container
reader handles. Each starts from one valid container and breaks exactly one thing.

    scripts/make-corrupt-container.py [OUTDIR [MODELFS-PACK]]

base.gguf is a small GGUF with BF16, F16, F32 and Q8_0 tensors of normal-looking weights (so
their planes are zstd frames; the 20 KiB BF16 and F16 ones get 4-bit exponent codes) and a BF16 tensor of widely spread magnitudes (byte planes rather
than 4-bit exponent codes); base.mfz is it packed with 32 KiB chunks. The expected outcome of
each file is written to OUTDIR/expected.txt (checked by test_container): "OK", the exact open
error, or "EIO LO HI" when the file opens and only reads of decoded bytes [LO, HI) fail.
Layout of the container: loader/container.h and docs/COMPRESSION.md.
"""
import os
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mfsgguf as G  # noqa: E402

HEADER = struct.Struct("<8sIIQQQII16s")   # magic, version, flags, size, n_chunks, index_off, input, chunk
ENTRY = struct.Struct("<QIIQIBBBB")       # stored off, stored size, decoded size, xxh3, tensor, codec, param, 2 zero
RAW, ZERO, ZSTD, BF16, F16, F32, BLOCKS, BF16X, F16X = range(9)
NAMES = {RAW: "raw", ZERO: "zero", ZSTD: "zstd", BF16: "bf16-planes", F16: "f16-planes", F32: "f32-planes",
         BLOCKS: "fields", BF16X: "bf16-nibbles", F16X: "f16-nibbles"}
assert HEADER.size == 64 and ENTRY.size == 32


def base_gguf(path):
    rng = np.random.default_rng(7)
    w = G.GGUFWriter(path)
    w.add_kv("general.architecture", G.STRING, "llama")
    w.add_kv("general.name", G.STRING, "container test")
    tensors = [
        # 20 KiB: one chunk above 16 KiB, so 4-bit exponent codes (smaller chunks may take byte
        # planes); sign and exponent only (smaller files), so the low-byte plane is a zstd frame too
        ("a.bf16", G.BF16, [2048, 5], lambda: G.fp32_to_bf16(rng.normal(0, 0.02, 10240).astype(np.float32))
         & np.uint16(0xFF80)),
        # 20 KiB too, sign and exponent only: the mantissa bit planes are zstd frames of zeros
        ("b.f16", G.F16, [2048, 5], lambda: G.fp32_to_fp16(rng.normal(0, 0.05, 10240).astype(np.float32))
         .view(np.uint16) & np.uint16(0xFC00)),
        ("c.f32", G.F32, [256], lambda: (1 + rng.normal(0, 0.1, 256)).astype("<f4")),
        # magnitudes spread over 2^-20..1: too many exponents for 4-bit codes, so byte planes
        ("e.bf16", G.BF16, [256, 2], lambda: G.fp32_to_bf16(
            (rng.choice([-1, 1], 512) * 2.0 ** rng.uniform(-20, 0, 512)).astype(np.float32))),
        ("d.q8_0", G.Q8_0, [256, 8], lambda: G.quantize_q8_0((rng.standard_t(4, 2048) * 0.02).astype(np.float32))),
    ]
    for name, t, ne, _ in tensors:
        w.add_tensor(name, t, ne)
    w.write(f() for _, _, _, f in tensors)


class Container(object):
    def __init__(self, blob):
        self.blob = bytes(blob)
        (self.magic, self.version, self.flags, self.size, self.n, self.index_off, self.input, self.chunk,
         self.zero) = HEADER.unpack_from(blob, 0)
        self.entries = [list(ENTRY.unpack_from(blob, self.index_off + 32 * i)) for i in range(self.n)]
        self.doff = []
        at = 0
        for e in self.entries:
            self.doff.append(at)
            at += e[2]

    def first(self, codec, stored=True):
        for i, e in enumerate(self.entries):
            if e[5] == codec and (e[1] > 0 or not stored):
                return i
        raise SystemExit("make-corrupt-container: no %s chunk in the base container" % NAMES[codec])

    def with_entry(self, i, **kw):
        fields = ["off", "csize", "dsize", "sum", "tensor", "codec", "param", "z0", "z1"]
        e = list(self.entries[i])
        for k, v in kw.items():
            e[fields.index(k)] = v
        b = bytearray(self.blob)
        ENTRY.pack_into(b, self.index_off + 32 * i, *e)
        return bytes(b)

    def with_header(self, **kw):
        h = dict(magic=self.magic, version=self.version, flags=self.flags, size=self.size, n=self.n,
                 index_off=self.index_off, input=self.input, chunk=self.chunk, zero=self.zero)
        h.update(kw)
        b = bytearray(self.blob)
        HEADER.pack_into(b, 0, h["magic"], h["version"], h["flags"], h["size"], h["n"], h["index_off"], h["input"],
                         h["chunk"], h["zero"])
        return bytes(b)

    def patched(self, at, new):
        b = bytearray(self.blob)
        b[at:at + len(new)] = new
        return bytes(b)

    def eio(self, i):
        return "EIO %d %d" % (self.doff[i], self.doff[i] + self.entries[i][2])


def files(c):
    """(name, bytes, expected) for every failure mode; {name} in expected is the file name."""
    size, n, idx = len(c.blob), c.n, c.index_off
    yield "base.mfz", c.blob, "OK"
    yield "bad-magic.mfz", c.patched(1, b"X"), "{name}: not a modelfs container (bad magic)"
    yield "bad-version.mfz", c.with_header(version=2), "{name}: container version 2 is not supported (only 1)"
    yield "reserved-header.mfz", c.with_header(flags=1), "{name}: reserved container header fields are not zero"
    yield "unknown-input.mfz", c.with_header(input=9), "{name}: unknown input kind 9 in the container header"
    yield "truncated-header.mfz", c.blob[:40], "{name}: truncated container header (40 bytes)"
    yield ("truncated-index.mfz", c.blob[:-7],
           "{name}: chunk index of %d entries does not match the %d bytes from offset %d to the end of the file"
           % (n, size - 7 - idx, idx))
    yield ("index-outside.mfz", c.with_header(index_off=size + 100),
           "{name}: chunk index at offset %d is outside the file (%d bytes)" % (size + 100, size))
    yield ("huge-chunk-count.mfz", c.with_header(n=1 << 60),
           "{name}: chunk index of %d entries does not match the %d bytes from offset %d to the end of the file"
           % (1 << 60, size - idx, idx))
    yield ("sizes-mismatch.mfz", c.with_header(size=c.size + 1),
           "{name}: chunks decode to %d bytes, the container header says %d" % (c.size, c.size + 1))
    k = c.first(BF16X)
    e = c.entries[k]
    yield ("chunk-out-of-range.mfz", c.with_entry(k, off=idx - e[1] + 1),
           "{name}: chunk %d: stored bytes [%d, %d) are outside the data area [64, %d)" % (k, idx - e[1] + 1, idx + 1, idx))
    prev = max(i for i in range(k) if c.entries[i][1] > 0)
    pe = c.entries[prev]
    yield ("chunks-overlap.mfz", c.with_entry(k, off=pe[0] + pe[1] - 1),
           "{name}: chunk %d: stored bytes at %d overlap the previous chunk's (up to %d)" % (k, pe[0] + pe[1] - 1, pe[0] + pe[1]))
    yield "unknown-codec.mfz", c.with_entry(k, codec=77), "{name}: chunk %d: unknown codec 77" % k
    yield ("zero-decoded-size.mfz", c.with_entry(k, dsize=0),
           "{name}: chunk %d: decoded size 0 is out of range (1 byte to 64 MiB)" % k)
    yield ("odd-element-size.mfz", c.with_entry(k, dsize=e[2] - 1),
           "{name}: chunk %d: decoded size %d is not a multiple of the bf16-nibbles element size 2" % (k, e[2] - 1))
    yield ("raw-size.mfz", c.with_entry(k, codec=RAW),
           "{name}: chunk %d: %d stored bytes for %d decoded do not fit codec raw" % (k, e[1], e[2]))
    yield "reserved-entry.mfz", c.with_entry(k, z0=1), "{name}: chunk %d: reserved index bytes are not zero" % k
    q = c.first(BLOCKS)
    yield ("bad-param.mfz", c.with_entry(q, param=4),
           "{name}: chunk %d: codec fields has no layout for parameter 4" % q)
    # read-time failures: the file opens, reads of the damaged chunk fail with EIO
    yield "bad-checksum.mfz", c.with_entry(k, sum=e[3] ^ 1), c.eio(k)
    # bf16-nibbles payload: u8 base, u8[3] zero, u32 escapes, then one u32 per plane (bit 31: zstd)
    # for the planes codes, low bytes, escapes; the exponent codes are a zstd frame
    base, n_esc = c.blob[e[0]], struct.unpack_from("<I", c.blob, e[0] + 4)[0]
    table = e[0] + 8
    words = struct.unpack_from("<3I", c.blob, table)
    zp = [p for p in range(3) if words[p] & 0x80000000][0]
    zoff = table + 12 + sum(w & 0x7FFFFFFF for w in words[:zp])
    zlen = words[zp] & 0x7FFFFFFF
    mid = zoff + zlen // 2
    yield "corrupt-plane.mfz", c.patched(mid, bytes([c.blob[mid] ^ 0x5A])), c.eio(k)
    yield "truncated-plane.mfz", c.patched(table + 4 * zp, struct.pack("<I", words[zp] - 3)), c.eio(k)
    yield "plane-not-zstd.mfz", c.patched(table + 4 * zp, struct.pack("<I", words[zp] & 0x7FFFFFFF)), c.eio(k)
    yield "escape-count.mfz", c.patched(e[0] + 4, struct.pack("<I", n_esc + 1)), c.eio(k)
    yield "exponent-base.mfz", c.patched(e[0], bytes([250])), c.eio(k)
    h = c.first(F16X)
    he = c.entries[h]
    yield "f16-exponent-base.mfz", c.patched(he[0], bytes([18])), c.eio(h)  # base + 14 > 31
    w = c.first(BF16)  # the widely spread tensor: byte planes
    yield "bad-checksum-planes.mfz", c.with_entry(w, sum=c.entries[w][3] ^ (1 << 63)), c.eio(w)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/container"
    pack = sys.argv[2] if len(sys.argv) > 2 else "bin/modelfs-pack"
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, "base.gguf")
    base_gguf(base)
    mfz = os.path.join(out, "base.mfz")
    subprocess.run([pack, "-q", "-f", "-T", "1", "--format", "container", "--chunk", "32K", base, mfz], check=True)
    c = Container(open(mfz, "rb").read())
    lines = ["base.gguf\tOK"]
    for name, blob, want in files(c):
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
        lines.append("%s\t%s" % (name, want.format(name=name)))
    with open(os.path.join(out, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
