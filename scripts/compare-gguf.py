#!/usr/bin/python3
"""compare-gguf.py: do two GGUF files hold the same model?

    scripts/compare-gguf.py [--ignore KEY]... [--tensors-only] EXPECTED ACTUAL

Compares, independent of order: every key (same value type and value, arrays element by
element, so the tokenizer arrays too), and every tensor (same name, ggml type, shape and
bytes). Prints each difference (at most 20) and a summary line; exits 0 when they match, 1
when they differ, 2 on bad usage. Also says whether the files are byte-identical.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import mfsgguf as G  # noqa: E402


def same_value(vt, a, b):
    if vt == G.ARRAY:
        return isinstance(a, G.Array) and isinstance(b, G.Array) and a == b
    if vt == G.FLOAT32 or vt == G.FLOAT64:
        return np.array(a).tobytes() == np.array(b).tobytes() or (a != a and b != b)
    return a == b


def main(argv):
    ap = argparse.ArgumentParser(prog="compare-gguf.py", description=__doc__.split("\n")[1])
    ap.add_argument("--ignore", action="append", default=[], metavar="KEY", help="a key not to compare")
    ap.add_argument("--tensors-only", action="store_true", help="compare tensors only, not keys")
    ap.add_argument("expected")
    ap.add_argument("actual")
    a = ap.parse_args(argv)
    try:
        e, g = G.GGUFReader(a.expected), G.GGUFReader(a.actual)
    except (OSError, G.GGUFError) as ex:
        print("compare-gguf.py: %s" % ex, file=sys.stderr)
        return 1
    diffs = []
    if not a.tensors_only:
        ek = {kv.key: kv for kv in e.kvs if kv.key not in a.ignore}
        gk = {kv.key: kv for kv in g.kvs if kv.key not in a.ignore}
        for k in sorted(set(ek) | set(gk)):
            if k not in gk:
                diffs.append("key %s: missing" % k)
            elif k not in ek:
                diffs.append("key %s: not expected (%r)" % (k, gk[k].value))
            elif ek[k].vtype != gk[k].vtype:
                diffs.append("key %s: type %s, expected %s" % (k, gk[k].vtype, ek[k].vtype))
            elif not same_value(ek[k].vtype, ek[k].value, gk[k].value):
                diffs.append("key %s: %r, expected %r" % (k, gk[k].value, ek[k].value))
    et = {t.name: t for t in e.tensors}
    gt = {t.name: t for t in g.tensors}
    for n in sorted(set(et) | set(gt)):
        if n not in gt:
            diffs.append("tensor %s: missing" % n)
        elif n not in et:
            diffs.append("tensor %s: not expected" % n)
        elif et[n].ggml_type != gt[n].ggml_type or list(et[n].ne) != list(gt[n].ne):
            diffs.append("tensor %s: %s %s, expected %s %s" % (n, G.type_name(gt[n].ggml_type), list(gt[n].ne),
                                                             G.type_name(et[n].ggml_type), list(et[n].ne)))
        elif not np.array_equal(e.tensor_bytes(et[n]), g.tensor_bytes(gt[n])):
            x, y = e.tensor_bytes(et[n]), g.tensor_bytes(gt[n])
            first = int(np.nonzero(x != y)[0][0])
            diffs.append("tensor %s: bytes differ (first at byte %d of %d)" % (n, first, len(x)))
    for d in diffs[:20]:
        print(d)
    if len(diffs) > 20:
        print("... %d differences in all" % len(diffs))
    identical = os.path.getsize(a.expected) == os.path.getsize(a.actual) and \
        np.array_equal(np.memmap(a.expected, dtype=np.uint8, mode="r"), np.memmap(a.actual, dtype=np.uint8, mode="r"))
    print("%s: %d keys, %d tensors compared: %s%s" % (
        a.actual, len(g.kvs), len(g.tensors), "same" if not diffs else "%d differences" % len(diffs),
        ", byte-identical" if identical else ""))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
