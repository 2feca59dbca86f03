#!/usr/bin/python3
"""mfsgguf: a small GGUF v2/v3 reader and writer, plus ggml's reference quantizers.

Used by modelfs's test-model generator (gen-model.py) and by tests to compare files.
Little-endian GGUF only.  Needs numpy (run with /usr/bin/python3).

Reader:
    r = GGUFReader(path)
    r.version, r.alignment, r.data_offset, r.header_end
    r.kvs        -> list of KV(key, vtype, value) in file order
    r.kv(key)    -> the plain value (Array items for arrays) or default
    r.tensors    -> list of TensorInfo(name, n_dims, ne, ggml_type, offset, nbytes)
    r.tensor_bytes(t) -> numpy uint8 memmap view of one tensor's data
    r.tensor_array(t) -> numpy view with the element dtype (float types, I8..I64)

Writer:
    w = GGUFWriter(path, alignment=32)
    w.add_kv(key, vtype, value)   # ARRAY values are Array(elem_type, items)
    w.add_tensor(name, ggml_type, ne, data)  # data: bytes-like / ndarray / callable
    w.write()                     # streams each tensor's data to the file

Values: strings are str (decoded as UTF-8 with surrogateescape so any byte string
round-trips), integers int, floats float, bools bool; ARRAY values are Array objects
whose items are a numpy array for numeric element types and a list otherwise
(strings, bools, nested Arrays).
"""

import mmap
import os
import struct
import sys
from collections import namedtuple

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32

# ---- GGUF metadata value types ------------------------------------------------
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

VALUE_TYPE_NAMES = {
    UINT8: "UINT8", INT8: "INT8", UINT16: "UINT16", INT16: "INT16", UINT32: "UINT32",
    INT32: "INT32", FLOAT32: "FLOAT32", BOOL: "BOOL", STRING: "STRING", ARRAY: "ARRAY",
    UINT64: "UINT64", INT64: "INT64", FLOAT64: "FLOAT64",
}

# scalar value type -> (struct format, numpy little-endian dtype)
_SCALAR = {
    UINT8: ("<B", "<u1"), INT8: ("<b", "<i1"), UINT16: ("<H", "<u2"), INT16: ("<h", "<i2"),
    UINT32: ("<I", "<u4"), INT32: ("<i", "<i4"), FLOAT32: ("<f", "<f4"), UINT64: ("<Q", "<u8"),
    INT64: ("<q", "<i8"), FLOAT64: ("<d", "<f8"), BOOL: ("<?", "<u1"),
}

# ---- ggml tensor types: id -> (name, block size, type size) -------------------
QK_K = 256
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", 256, 2 + 2 + QK_K // 16 + QK_K // 4),
    11: ("Q3_K", 256, 2 + QK_K // 4 + QK_K // 8 + 12),
    12: ("Q4_K", 256, 2 + 2 + QK_K // 2 + 12),
    13: ("Q5_K", 256, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    14: ("Q6_K", 256, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    15: ("Q8_K", 256, 4 + QK_K + QK_K // 8),
    16: ("IQ2_XXS", 256, 2 + QK_K // 4),
    17: ("IQ2_XS", 256, 2 + QK_K // 4 + QK_K // 32),
    18: ("IQ3_XXS", 256, 2 + QK_K // 4 + QK_K // 8),
    19: ("IQ1_S", 256, 2 + QK_K // 8 + QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", 256, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    22: ("IQ2_S", 256, 2 + QK_K // 4 + QK_K // 16),
    23: ("IQ4_XS", 256, 2 + 2 + QK_K // 2 + QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, QK_K // 8 + QK_K // 16 + QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 2 + 4 * 13),
    35: ("TQ2_0", 256, 2 + 64),
}
GGML_TYPE_BY_NAME = {v[0]: k for k, v in GGML_TYPES.items()}
F32, F16, Q4_0, Q8_0, BF16 = 0, 1, 2, 8, 30

# numpy element dtype of the plain (non-block) ggml types; BF16 is raw uint16
_ELEM_DTYPE = {0: "<f4", 1: "<f2", 24: "<i1", 25: "<i2", 26: "<i4", 27: "<i8", 28: "<f8", 30: "<u2"}

# llama.cpp's general.file_type (enum llama_ftype) for the types we write
FILE_TYPE = {F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, BF16: 32}


class GGUFError(Exception):
    pass


def type_name(t):
    return GGML_TYPES[t][0] if t in GGML_TYPES else "type%d" % t


def tensor_nbytes(ggml_type, ne):
    """Size in bytes of a tensor of ggml type and shape ne (ne[0] innermost)."""
    if ggml_type not in GGML_TYPES:
        raise GGUFError("unknown ggml type %d" % ggml_type)
    _, blck, tsize = GGML_TYPES[ggml_type]
    ne = [int(n) for n in ne]
    if any(n < 0 for n in ne):
        raise GGUFError("negative dimension in %r" % (ne,))
    if ne and ne[0] % blck != 0:
        raise GGUFError("ne[0]=%d is not a multiple of the %s block size %d"
                        % (ne[0], type_name(ggml_type), blck))
    n = 1
    for d in ne[1:]:
        n *= d
    return (ne[0] if ne else 1) // blck * tsize * n


def pad(x, n):
    return (x + n - 1) // n * n


class Array(object):
    """A GGUF array value: element type + items (numpy array or list)."""
    __slots__ = ("etype", "items")

    def __init__(self, etype, items):
        self.etype = etype
        if etype in _SCALAR and etype != BOOL and not isinstance(items, np.ndarray):
            items = np.asarray(items, dtype=_SCALAR[etype][1])
        self.items = items

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __eq__(self, other):
        if not isinstance(other, Array) or other.etype != self.etype or len(other) != len(self):
            return False
        if isinstance(self.items, np.ndarray):
            return np.asarray(other.items).tobytes() == self.items.tobytes()
        return list(self.items) == list(other.items)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        head = list(self.items[:4])
        return "Array(%s, n=%d, %r%s)" % (VALUE_TYPE_NAMES.get(self.etype, self.etype),
                                          len(self.items), head, "..." if len(self.items) > 4 else "")


KV = namedtuple("KV", "key vtype value")
TensorInfo = namedtuple("TensorInfo", "name n_dims ne ggml_type offset nbytes")


# ==============================================================================
# Reader
# ==============================================================================
class GGUFReader(object):
    def __init__(self, path):
        self.path = path
        self._f = open(path, "rb")
        size = os.fstat(self._f.fileno()).st_size
        self.file_size = size
        if size == 0:
            raise GGUFError("%s: empty file" % path)
        self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        self._buf = memoryview(self._mm)
        self._pos = 0
        try:
            self._parse()
        except (struct.error, IndexError, ValueError) as e:
            raise GGUFError("%s: truncated or malformed header (%s)" % (path, e))

    # -- low level
    def _need(self, n):
        if n < 0 or self._pos + n > self.file_size:
            raise GGUFError("%s: truncated at offset %d (need %d bytes)" % (self.path, self._pos, n))

    def _unpack(self, fmt, n):
        self._need(n)
        v = struct.unpack_from(fmt, self._buf, self._pos)[0]
        self._pos += n
        return v

    def _u32(self):
        return self._unpack("<I", 4)

    def _u64(self):
        return self._unpack("<Q", 8)

    def _str(self):
        n = self._u64()
        self._need(n)
        b = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return b.decode("utf-8", "surrogateescape")

    def _value(self, vtype, depth=0):
        if vtype == STRING:
            return self._str()
        if vtype == ARRAY:
            if depth > 8:
                raise GGUFError("%s: arrays nested too deeply" % self.path)
            etype = self._u32()
            n = self._u64()
            if etype in _SCALAR and etype != BOOL:
                dt = np.dtype(_SCALAR[etype][1])
                self._need(n * dt.itemsize)
                items = np.frombuffer(self._buf, dtype=dt, count=n, offset=self._pos).copy()
                self._pos += n * dt.itemsize
                return Array(etype, items)
            if etype == BOOL:
                self._need(n)
                raw = bytes(self._buf[self._pos:self._pos + n])
                self._pos += n
                return Array(BOOL, [b != 0 for b in raw])
            if etype == STRING:
                # each string needs at least 8 bytes: reject absurd counts early
                self._need(n * 8)
                mm, pos, end, unpack = self._mm, self._pos, self.file_size, struct.unpack_from
                items = []
                append = items.append
                for _ in range(n):
                    if pos + 8 > end:
                        self._pos = pos
                        self._need(8)
                    ln = unpack("<Q", mm, pos)[0]
                    pos += 8
                    if ln > end - pos:
                        self._pos = pos
                        self._need(ln)
                    append(mm[pos:pos + ln].decode("utf-8", "surrogateescape"))
                    pos += ln
                self._pos = pos
                return Array(STRING, items)
            if etype == ARRAY:
                self._need(n * 12)
                return Array(ARRAY, [self._value(ARRAY, depth + 1) for _ in range(n)])
            raise GGUFError("%s: unknown array element type %d" % (self.path, etype))
        if vtype == BOOL:
            b = self._unpack("<B", 1)
            return b != 0
        if vtype in _SCALAR:
            fmt = _SCALAR[vtype][0]
            return self._unpack(fmt, struct.calcsize(fmt))
        raise GGUFError("%s: unknown value type %d at offset %d" % (self.path, vtype, self._pos - 4))

    def _parse(self):
        self._need(4)
        if bytes(self._buf[0:4]) != GGUF_MAGIC:
            raise GGUFError("%s: not a GGUF file (bad magic)" % self.path)
        self._pos = 4
        self.version = self._u32()
        if self.version not in (2, 3):
            raise GGUFError("%s: unsupported GGUF version %d" % (self.path, self.version))
        n_tensors = self._u64()
        n_kv = self._u64()
        if n_tensors > self.file_size or n_kv > self.file_size:
            raise GGUFError("%s: implausible counts (%d tensors, %d kvs)" % (self.path, n_tensors, n_kv))
        self.kvs = []
        self._kvmap = {}
        for _ in range(n_kv):
            key = self._str()
            vtype = self._u32()
            val = self._value(vtype)
            if key in self._kvmap:
                raise GGUFError("%s: duplicate key %s" % (self.path, key))
            kv = KV(key, vtype, val)
            self.kvs.append(kv)
            self._kvmap[key] = kv
        self.alignment = GGUF_DEFAULT_ALIGNMENT
        if "general.alignment" in self._kvmap:
            a = self._kvmap["general.alignment"]
            if a.vtype != UINT32 or a.value == 0 or (a.value & (a.value - 1)) != 0:
                raise GGUFError("%s: bad general.alignment %r" % (self.path, a.value))
            self.alignment = a.value
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            n_dims = self._u32()
            if n_dims > 4:
                raise GGUFError("%s: tensor %s has %d dims" % (self.path, name, n_dims))
            ne = [self._u64() for _ in range(n_dims)]
            t = self._u32()
            off = self._u64()
            infos.append((name, n_dims, ne, t, off))
        self.header_end = self._pos
        self.data_offset = pad(self._pos, self.alignment)
        self.tensors = []
        self._tmap = {}
        for name, n_dims, ne, t, off in infos:
            if t not in GGML_TYPES:
                raise GGUFError("%s: tensor %s has unknown type %d" % (self.path, name, t))
            nb = tensor_nbytes(t, ne)
            if off % self.alignment != 0:
                raise GGUFError("%s: tensor %s offset %d not aligned to %d" % (self.path, name, off, self.alignment))
            if self.data_offset + off + nb > self.file_size:
                raise GGUFError("%s: tensor %s data [%d, +%d) past end of file (%d)"
                                % (self.path, name, self.data_offset + off, nb, self.file_size))
            if name in self._tmap:
                raise GGUFError("%s: duplicate tensor %s" % (self.path, name))
            ti = TensorInfo(name, n_dims, ne, t, off, nb)
            self.tensors.append(ti)
            self._tmap[name] = ti

    # -- public
    def kv(self, key, default=None):
        kv = self._kvmap.get(key)
        return default if kv is None else kv.value

    def kv_type(self, key):
        kv = self._kvmap.get(key)
        return None if kv is None else kv.vtype

    def tensor(self, name):
        return self._tmap[name]

    def tensor_bytes(self, t):
        """Raw bytes of tensor t (TensorInfo or name) as a read-only numpy uint8 array."""
        if isinstance(t, str):
            t = self._tmap[t]
        start = self.data_offset + t.offset
        return np.frombuffer(self._mm, dtype=np.uint8, count=t.nbytes, offset=start)

    def tensor_array(self, t):
        """Tensor data as numpy array in row-major shape reversed(ne) (plain types only)."""
        if isinstance(t, str):
            t = self._tmap[t]
        if t.ggml_type not in _ELEM_DTYPE:
            raise GGUFError("tensor %s: %s has no element dtype" % (t.name, type_name(t.ggml_type)))
        a = self.tensor_bytes(t).view(_ELEM_DTYPE[t.ggml_type])
        return a.reshape(tuple(reversed(t.ne)) if t.ne else ())

    def close(self):
        self._buf.release()
        try:
            self._mm.close()
        except BufferError:
            pass  # numpy views still alive; the map goes away with them
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ==============================================================================
# Writer
# ==============================================================================
def _pack_string(s):
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _pack_value(vtype, val, out):
    """Append the encoding of val (without its type tag) to bytearray out."""
    if vtype == STRING:
        out += _pack_string(val)
    elif vtype == BOOL:
        out += struct.pack("<B", 1 if val else 0)
    elif vtype in _SCALAR:
        out += struct.pack(_SCALAR[vtype][0], val)
    elif vtype == ARRAY:
        if not isinstance(val, Array):
            raise GGUFError("ARRAY value must be an Array, got %r" % type(val))
        et = val.etype
        out += struct.pack("<IQ", et, len(val.items))
        if et in _SCALAR and et != BOOL:
            out += np.asarray(val.items, dtype=_SCALAR[et][1]).tobytes()
        elif et == BOOL:
            out += bytes(1 if b else 0 for b in val.items)
        elif et == STRING:
            parts = []
            for s in val.items:
                b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
                parts.append(struct.pack("<Q", len(b)))
                parts.append(b)
            out += b"".join(parts)
        elif et == ARRAY:
            for sub in val.items:
                _pack_value(ARRAY, sub, out)
        else:
            raise GGUFError("unknown array element type %r" % et)
    else:
        raise GGUFError("unknown value type %r" % vtype)


class GGUFWriter(object):
    """Dense GGUF v3 writer with llama.cpp's layout.

    Layout: header, kvs, tensor infos, zero padding to `alignment`, then each tensor's
    data followed by zero padding to `alignment` (also after the last one).  Tensor
    offsets are the running sum of padded sizes.  A file without tensors is not padded
    after the header (as gguf-py writes vocab-only files).
    """

    def __init__(self, path, alignment=None, version=3):
        self._f = None
        self.path = path
        self.version = version
        self.alignment = alignment
        self.kvs = []
        self._keys = set()
        self.tensors = []   # [name, ggml_type, ne, nbytes, offset, data]
        self._tnames = set()

    def add_kv(self, key, vtype, value):
        if key in self._keys:
            raise GGUFError("duplicate key %s" % key)
        if vtype == ARRAY and not isinstance(value, Array):
            raise GGUFError("key %s: ARRAY value must be an Array" % key)
        self._keys.add(key)
        self.kvs.append(KV(key, vtype, value))

    def add_tensor(self, name, ggml_type, ne, data=None):
        """data: bytes-like/ndarray with exactly the tensor's bytes, or a callable
        returning that (called once, at write time), or None to pass it to write()."""
        if name in self._tnames:
            raise GGUFError("duplicate tensor %s" % name)
        self._tnames.add(name)
        ne = [int(n) for n in ne]
        self.tensors.append([name, ggml_type, ne, tensor_nbytes(ggml_type, ne), None, data])

    def _alignment(self):
        a = self.alignment
        for kv in self.kvs:
            if kv.key == "general.alignment":
                if a is not None and a != kv.value:
                    raise GGUFError("alignment %d disagrees with general.alignment %d" % (a, kv.value))
                a = kv.value
        if a is None:
            a = GGUF_DEFAULT_ALIGNMENT
        if a <= 0 or a & (a - 1):
            raise GGUFError("alignment %d is not a power of two" % a)
        return a

    def header_bytes(self):
        """Everything before the tensor data, including the padding."""
        align = self._alignment()
        out = bytearray()
        out += GGUF_MAGIC
        out += struct.pack("<IQQ", self.version, len(self.tensors), len(self.kvs))
        for kv in self.kvs:
            out += _pack_string(kv.key)
            out += struct.pack("<I", kv.vtype)
            _pack_value(kv.vtype, kv.value, out)
        off = 0
        for t in self.tensors:
            t[4] = off
            name, gt, ne = t[0], t[1], t[2]
            out += _pack_string(name)
            out += struct.pack("<I", len(ne))
            out += struct.pack("<%dQ" % len(ne), *ne)
            out += struct.pack("<IQ", gt, off)
            off += pad(t[3], align)
        if self.tensors:
            out += b"\0" * (pad(len(out), align) - len(out))
        return bytes(out)

    def data_size(self):
        align = self._alignment()
        return sum(pad(t[3], align) for t in self.tensors)

    # -- streaming API: begin(), write_data() once per tensor in order, finish()
    def begin(self):
        self._align = self._alignment()
        hdr = self.header_bytes()
        self._tmp = self.path + ".tmp%d" % os.getpid()
        try:
            self._f = open(self._tmp, "wb")
        except OSError as e:
            raise GGUFError("%s: cannot create: %s" % (self.path, e.strerror))
        self._next = 0
        self._f.write(hdr)

    def write_data(self, data):
        """Write the next tensor's bytes (bytes-like or ndarray), then its padding."""
        if self._next >= len(self.tensors):
            raise GGUFError("more tensor data than tensors")
        t = self.tensors[self._next]
        name, nbytes = t[0], t[3]
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data)
        mv = memoryview(data).cast("B")
        if mv.nbytes != nbytes:
            raise GGUFError("tensor %s: got %d bytes, expected %d" % (name, mv.nbytes, nbytes))
        self._f.write(mv)
        mv.release()
        p = pad(nbytes, self._align) - nbytes
        if p:
            self._f.write(b"\0" * p)
        t[5] = None
        self._next += 1

    def finish(self):
        if self._next != len(self.tensors):
            self.abort()
            raise GGUFError("only %d of %d tensors written" % (self._next, len(self.tensors)))
        self._f.close()
        self._f = None
        os.replace(self._tmp, self.path)

    def abort(self):
        if getattr(self, "_f", None) is not None:
            self._f.close()
            self._f = None
            try:
                os.unlink(self._tmp)
            except OSError:
                pass

    def write(self, data_iter=None):
        """Write the whole file.  Tensor data comes from add_tensor's data (bytes-like,
        ndarray or callable), or, for tensors added with data=None, from data_iter."""
        it = iter(data_iter) if data_iter is not None else None
        self.begin()
        try:
            for t in self.tensors:
                data = t[5]
                if data is None:
                    if it is None:
                        raise GGUFError("no data for tensor %s" % t[0])
                    data = next(it)
                elif callable(data):
                    data = data()
                self.write_data(data)
                del data
            self.finish()
        except BaseException:
            self.abort()
            raise


def rewrite(reader, path):
    """Write a parsed file back out with the writer (tests: must be byte-identical)."""
    w = GGUFWriter(path, alignment=reader.alignment, version=reader.version)
    for kv in reader.kvs:
        w.add_kv(kv.key, kv.vtype, kv.value)
    for t in reader.tensors:
        w.add_tensor(t.name, t.ggml_type, t.ne, (lambda t=t: reader.tensor_bytes(t)))
    w.write()


# ==============================================================================
# safetensors (https://github.com/huggingface/safetensors): u64 LE header length N,
# N bytes of JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {...}}
# padded with spaces, then the data, tensors back to back (offsets relative to it).
# ==============================================================================
ST_DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2,
                 "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
ST_NUMPY = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8", "I8": "<i1", "U8": "<u1",
            "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8"}
# ggml type <-> safetensors dtype for the float types
GGML_TO_ST = {F32: "F32", F16: "F16", BF16: "BF16"}


class SafetensorsReader(object):
    def __init__(self, path):
        import json
        self.path = path
        self.file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            hb = f.read(8)
            if len(hb) != 8:
                raise GGUFError("%s: too short for safetensors" % path)
            n = struct.unpack("<Q", hb)[0]
            if n > self.file_size - 8 or n > 100 << 20:
                raise GGUFError("%s: bad safetensors header length %d" % (path, n))
            raw = f.read(n)
        self.header_len = n
        self.data_start = 8 + n
        try:
            hdr = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise GGUFError("%s: bad safetensors JSON header (%s)" % (path, e))
        self.metadata = hdr.pop("__metadata__", None)
        self.names = list(hdr.keys())     # header order
        self.tensors = hdr
        for name, t in hdr.items():
            b, e = t["data_offsets"]
            dt = t["dtype"]
            if dt not in ST_DTYPE_SIZE:
                raise GGUFError("%s: tensor %s has unknown dtype %s" % (path, name, dt))
            n_el = 1
            for d in t["shape"]:
                n_el *= d
            if e - b != n_el * ST_DTYPE_SIZE[dt] or b < 0 or self.data_start + e > self.file_size:
                raise GGUFError("%s: tensor %s has bad data_offsets %r" % (path, name, t["data_offsets"]))
        self._mm = np.memmap(path, dtype=np.uint8, mode="r") if self.file_size > 0 else None

    def keys(self):
        """Names sorted, as safetensors' safe_open().keys() returns them."""
        return sorted(self.names)

    def offset_keys(self):
        return sorted(self.names, key=lambda k: self.tensors[k]["data_offsets"][0])

    def tensor_bytes(self, name):
        b, e = self.tensors[name]["data_offsets"]
        return self._mm[self.data_start + b:self.data_start + e]

    def tensor_array(self, name):
        t = self.tensors[name]
        return self.tensor_bytes(name).view(ST_NUMPY[t["dtype"]]).reshape(t["shape"])


class SafetensorsWriter(object):
    """Streaming safetensors writer: declare all tensors, begin(), write_data() for each
    in declaration order, finish().  The data is laid out in declaration order, without
    holes; the JSON header lists __metadata__ first, then the tensors in that order,
    compact, padded with spaces to a multiple of 8 bytes."""

    def __init__(self, path, metadata=None):
        self.path = path
        self.metadata = {"format": "pt"} if metadata is None else metadata
        self.tensors = []   # (name, dtype, shape, nbytes)
        self._f = None

    def add_tensor(self, name, dtype, shape):
        n = ST_DTYPE_SIZE[dtype]
        for d in shape:
            n *= int(d)
        self.tensors.append((name, dtype, [int(d) for d in shape], n))

    def total_size(self):
        return sum(t[3] for t in self.tensors)

    def header_bytes(self):
        import json
        hdr = {}
        if self.metadata is not None:
            hdr["__metadata__"] = self.metadata
        off = 0
        for name, dtype, shape, n in self.tensors:
            hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
            off += n
        js = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        js += b" " * (pad(len(js), 8) - len(js))
        return struct.pack("<Q", len(js)) + js

    def begin(self):
        self._tmp = self.path + ".tmp%d" % os.getpid()
        try:
            self._f = open(self._tmp, "wb")
        except OSError as e:
            raise GGUFError("%s: cannot create: %s" % (self.path, e.strerror))
        self._f.write(self.header_bytes())
        self._next = 0

    def write_data(self, data):
        name, _, _, n = self.tensors[self._next]
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data)
        mv = memoryview(data).cast("B")
        if mv.nbytes != n:
            raise GGUFError("safetensors %s: got %d bytes, expected %d" % (name, mv.nbytes, n))
        self._f.write(mv)
        mv.release()
        self._next += 1

    def finish(self):
        if self._next != len(self.tensors):
            self.abort()
            raise GGUFError("only %d of %d safetensors tensors written" % (self._next, len(self.tensors)))
        self._f.close()
        self._f = None
        os.replace(self._tmp, self.path)

    def abort(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            try:
                os.unlink(self._tmp)
            except OSError:
                pass


# ==============================================================================
# Conversions and reference quantizers (bit-exact with ggml)
# ==============================================================================
def fp32_to_bf16(x):
    """ggml_compute_fp32_to_bf16: round to nearest even; NaN -> quiet NaN. Returns uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (u & np.uint32(0x7fffffff)) > np.uint32(0x7f800000)
    r = ((u + (np.uint32(0x7fff) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)).astype(np.uint16)
    if nan.any():
        r[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(64)).astype(np.uint16)
    return r


def bf16_to_fp32(h):
    return (np.asarray(h, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def fp32_to_fp16(x):
    """GGML_FP32_TO_FP16 (round to nearest even, F16C semantics)."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16)


def _roundf(x):
    """C roundf (half away from zero) on float32 values, exactly (no x + 0.5, whose
    float32 rounding would turn 0.49999997 into 1)."""
    q = np.rint(x)                         # ties to even ...
    tie = np.abs(x - q) == np.float32(0.5)  # x - q is exact in float32
    if tie.any():                          # ... but roundf takes ties away from zero
        q[tie] = np.trunc(x[tie]) + np.sign(x[tie])
    return q


def quantize_q8_0(x):
    """quantize_row_q8_0_ref over the rows of x (float32, last dim % 32 == 0).
    Returns uint8 bytes, 34 per block of 32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size % 32:
        raise GGUFError("Q8_0 needs a multiple of 32 values")
    blocks = x.reshape(-1, 32)
    nb = blocks.shape[0]
    out = np.empty((nb, 34), dtype=np.uint8)
    step = 1 << 17
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for s in range(0, nb, step):
            b = blocks[s:s + step]
            amax = np.abs(b).max(axis=1)
            d = (amax / np.float32(127)).astype(np.float32)
            idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
            q = _roundf(b * idv[:, None])  # float32 product, then roundf
            out[s:s + step, 0:2] = fp32_to_fp16(d).view(np.uint8).reshape(-1, 2)
            out[s:s + step, 2:] = q.astype(np.int8).view(np.uint8)
    return out.reshape(-1)


def quantize_q4_0(x, fma=None):
    """quantize_row_q4_0_ref over the rows of x (float32, last dim % 32 == 0).
    Returns uint8 bytes, 18 per block of 32.

    ggml computes (int8_t)(x*id + 8.5f).  Whether the compiler fuses that into an FMA
    changes the rounding in rare cases; fma=None picks the behaviour of the llama.cpp
    build we verified against (see Q4_0_FMA)."""
    if fma is None:
        fma = Q4_0_FMA
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size % 32:
        raise GGUFError("Q4_0 needs a multiple of 32 values")
    blocks = x.reshape(-1, 32)
    nb = blocks.shape[0]
    out = np.empty((nb, 18), dtype=np.uint8)
    step = 1 << 17
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for s in range(0, nb, step):
            b = blocks[s:s + step]
            imax = np.abs(b).argmax(axis=1)  # first index of the largest |v|
            mx = b[np.arange(b.shape[0]), imax]
            d = (mx / np.float32(-8)).astype(np.float32)
            idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
            if fma:
                v = (b.astype(np.float64) * idv[:, None].astype(np.float64) + 8.5).astype(np.float32)
            else:
                v = (b * idv[:, None]).astype(np.float32) + np.float32(8.5)
            qi = np.trunc(v)
            qi = np.minimum(qi, 15).astype(np.int8).astype(np.uint8)
            out[s:s + step, 0:2] = fp32_to_fp16(d).view(np.uint8).reshape(-1, 2)
            out[s:s + step, 2:] = qi[:, :16] | (qi[:, 16:] << np.uint8(4))
    return out.reshape(-1)


# Set after verifying against llama-quantize from a -DGGML_NATIVE=ON x86-64 build.
Q4_0_FMA = False


def encode(x, ggml_type):
    """float32 array (row-major, last dim = ne0) -> raw ggml bytes as a numpy array."""
    if ggml_type == F32:
        return np.ascontiguousarray(x, dtype="<f4")
    if ggml_type == F16:
        return fp32_to_fp16(x)
    if ggml_type == BF16:
        return fp32_to_bf16(x)
    if ggml_type == Q8_0:
        return quantize_q8_0(x)
    if ggml_type == Q4_0:
        return quantize_q4_0(x)
    raise GGUFError("cannot encode to %s" % type_name(ggml_type))


# ==============================================================================
# Small CLI for humans and tests
# ==============================================================================
def _fmt_value(kv, limit=6):
    v = kv.value
    if kv.vtype == ARRAY:
        return "[%s x %d] %s%s" % (VALUE_TYPE_NAMES.get(v.etype, v.etype), len(v),
                                   ", ".join(repr(i) for i in list(v.items[:limit])),
                                   ", ..." if len(v) > limit else "")
    return repr(v)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Dump or rewrite a GGUF file with mfsgguf.")
    ap.add_argument("file")
    ap.add_argument("--rewrite", metavar="OUT", help="parse FILE and write it back to OUT")
    a = ap.parse_args(argv)
    try:
        r = GGUFReader(a.file)
        if a.rewrite:
            rewrite(r, a.rewrite)
            return 0
        print("version %d, %d kvs, %d tensors, alignment %d, data at %d"
              % (r.version, len(r.kvs), len(r.tensors), r.alignment, r.data_offset))
        for kv in r.kvs:
            print("%s: %s = %s" % (kv.key, VALUE_TYPE_NAMES.get(kv.vtype, kv.vtype), _fmt_value(kv)))
        for t in r.tensors:
            print("%-40s %-6s %-24s off %d size %d" % (t.name, type_name(t.ggml_type), t.ne, t.offset, t.nbytes))
    except (GGUFError, OSError) as e:
        sys.stderr.write("mfsgguf: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
