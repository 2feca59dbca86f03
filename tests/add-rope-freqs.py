#!/usr/bin/python3
"""add-rope-freqs.py IN.gguf OUT.gguf [FACTOR LOW HIGH ORIG_CTX]: copy a llama GGUF and add the
`rope_freqs.weight` tensor of Llama 3 rope scaling, computed as convert_hf_to_gguf.py does from
rope_scaling {factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}
(defaults 8 1 4 8192, Llama 3.1's). For tests of the runner's frequency factors."""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import mfsgguf as G  # noqa: E402


def main(argv):
    src, dst = argv[0], argv[1]
    factor, low, high, orig = (float(argv[2]), float(argv[3]), float(argv[4]), float(argv[5])) if len(argv) > 5 \
        else (8.0, 1.0, 4.0, 8192.0)
    r = G.GGUFReader(src)
    arch = r.kv("general.architecture")
    hd = r.kv(arch + ".embedding_length") // r.kv(arch + ".attention.head_count")
    n_rot = r.kv(arch + ".rope.dimension_count", hd)
    base = r.kv(arch + ".rope.freq_base", 10000.0)
    freqs = 1.0 / (base ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot))
    low_wl, high_wl = orig / low, orig / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (orig / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    w = G.GGUFWriter(dst, alignment=r.alignment)
    for kv in r.kvs:
        w.add_kv(kv.key, kv.vtype, kv.value)
    w.add_tensor("rope_freqs.weight", G.F32, [len(out)], np.array(out, dtype="<f4"))
    for t in r.tensors:
        w.add_tensor(t.name, t.ggml_type, t.ne, (lambda t=t: r.tensor_bytes(t)))
    w.write()


if __name__ == "__main__":
    main(sys.argv[1:])
