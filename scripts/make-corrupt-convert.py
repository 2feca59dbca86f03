#!/usr/bin/python3
"""Write the handcrafted inputs of tests/data/corrupt-convert/: small safetensors files and
Hugging Face directories, each valid or broken in exactly one way.

    scripts/make-corrupt-convert.py [OUTDIR [MODELFS-PACK]]

What modelfs must say about each (mfs_model_open's message, or OK) is in
tests/data/corrupt-convert/expected.txt, checked by test_safetensors and tests/test_convert.sh.
"""
import json
import os
import shutil
import struct
import subprocess
import sys


def st(tensors, data, meta=None, raw_header=None, header_len=None, tail=b""):
    """A safetensors file: tensors = [(name, dtype, shape, begin, end)] in header order."""
    if raw_header is None:
        hdr = {}
        if meta is not None:
            hdr["__metadata__"] = meta
        for name, dtype, shape, b, e in tensors:
            hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
        raw_header = json.dumps(hdr, separators=(",", ":")).encode()
        raw_header += b" " * (-len(raw_header) % 8)
    n = len(raw_header) if header_len is None else header_len
    return struct.pack("<Q", n) + raw_header + data + tail


F32_8 = bytes(range(32))  # 8 float32 of junk: the values do not matter here


def files():
    ok = [("a", "F32", [2, 2], 0, 16), ("b", "F32", [4], 16, 32)]
    yield "valid.safetensors", st(ok, F32_8, meta={"format": "pt", "note": "modelfs test"})
    yield "header-past-end.safetensors", st(ok, F32_8, header_len=4096)
    yield "header-too-large.safetensors", st(ok, F32_8, header_len=100000001)
    yield "json-syntax.safetensors", st([], F32_8, raw_header=b'{"a":{"dtype":"F32",,"shape":[8]}}  ')
    yield "json-truncated.safetensors", st([], b"", raw_header=b'{"a":{"dtype":"F32"')
    yield "unknown-dtype.safetensors", st([("a", "F7", [8], 0, 32)], F32_8)
    yield "overlap.safetensors", st([("a", "F32", [6], 0, 24), ("b", "F32", [4], 16, 32)], F32_8)
    yield "hole.safetensors", st([("a", "F32", [2], 0, 8), ("b", "F32", [4], 16, 32)], F32_8)
    yield "trailing-bytes.safetensors", st(ok, F32_8, tail=b"\0\0\0")
    yield "size-mismatch.safetensors", st([("a", "F32", [3], 0, 16), ("b", "F32", [4], 16, 32)], F32_8)
    yield "outside-file.safetensors", st([("a", "F32", [4], 0, 16), ("b", "F32", [8], 16, 48)], F32_8)
    yield "offsets-reversed.safetensors", st([("a", "F32", [0], 16, 0)], F32_8)
    yield "bad-metadata.safetensors", st(ok, F32_8, meta={"format": 1})
    yield "negative-dim.safetensors", st([("a", "F32", [-8], 0, 32)], F32_8)
    yield "too-many-dims.safetensors", st([("a", "F32", [1] * 9 + [8], 0, 32)], F32_8)
    yield "u64.safetensors", st([("a", "U64", [4], 0, 32)], F32_8)
    yield "nul-in-header.safetensors", st([], b"", raw_header=b'{"a\0":{}}      ')
    yield "bad-utf8.safetensors", st([], b"", raw_header=b'{"\xff":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}')
    # every dtype modelfs converts: BOOL as I8, U8/U16/U32 widened, F8 to F16; 5 dims folded
    conv = [("bool", "BOOL", [2], 0, 2), ("f8_e4m3", "F8_E4M3", [4], 2, 6), ("f8_e5m2", "F8_E5M2", [4], 6, 10),
            ("u8", "U8", [2], 10, 12), ("u16", "U16", [2], 12, 16), ("u32", "U32", [1], 16, 20),
            ("model.layers.0/odd name", "I32", [1, 1, 1, 1, 3], 20, 32)]
    yield "conversions.safetensors", st(conv, bytes([1, 0, 0x38, 0x7F, 0xC0, 0x01, 0x3C, 0x7C, 0xFC, 0x01,
                                                     255, 7, 0xFF, 0xFF, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF]) + bytes(12))


def hf_config(arch="LlamaForCausalLM", **kw):
    c = {"architectures": [arch], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
         "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 16,
         "tie_word_embeddings": True, "torch_dtype": "float32"}
    c.update(kw)
    return json.dumps(c, indent=2).encode() + b"\n"


def llama_tensors(prefix_rows=8):
    """A 1-block llama with dim 8, 2 heads of 4, 1 kv head, ffn 16, vocab 16, tied."""
    shapes = [("model.embed_tokens.weight", [16, 8]), ("model.norm.weight", [8]),
              ("model.layers.0.input_layernorm.weight", [8]), ("model.layers.0.self_attn.q_proj.weight", [prefix_rows, 8]),
              ("model.layers.0.self_attn.k_proj.weight", [4, 8]), ("model.layers.0.self_attn.v_proj.weight", [4, 8]),
              ("model.layers.0.self_attn.o_proj.weight", [8, 8]),
              ("model.layers.0.post_attention_layernorm.weight", [8]),
              ("model.layers.0.mlp.gate_proj.weight", [16, 8]), ("model.layers.0.mlp.up_proj.weight", [16, 8]),
              ("model.layers.0.mlp.down_proj.weight", [8, 16])]
    return sorted(shapes)


def st_of(shapes, dtype="F32", size=4):
    ts, off = [], 0
    for name, shape in shapes:
        n = size
        for d in shape:
            n *= d
        ts.append((name, dtype, shape, off, off + n))
        off += n
    return st(ts, bytes(i * 7 % 251 for i in range(off)))


def dirs():
    """(name, {file: bytes})"""
    shapes = llama_tensors()
    full = st_of(shapes)
    yield "hf-valid", {"config.json": hf_config(), "model.safetensors": full}
    half = len(shapes) // 2
    index = {"metadata": {"total_size": 0},
             "weight_map": {n: "model-%05d-of-00002.safetensors" % (1 if i < half else 2)
                            for i, (n, _) in enumerate(shapes)}}
    yield "hf-missing-shard", {"config.json": hf_config(), "model-00001-of-00002.safetensors": st_of(shapes[:half]),
                               "model.safetensors.index.json": json.dumps(index, indent=2).encode()}
    yield "hf-missing-shard-noindex", {"config.json": hf_config(),
                                       "model-00001-of-00003.safetensors": st_of(shapes[:half]),
                                       "model-00003-of-00003.safetensors": st_of(shapes[half:])}
    bad_index = dict(index)
    bad_index["weight_map"] = dict(index["weight_map"], **{"model.extra.weight": "model-00001-of-00002.safetensors"})
    yield "hf-index-mismatch", {"config.json": hf_config(), "model-00001-of-00002.safetensors": st_of(shapes[:half]),
                                "model-00002-of-00002.safetensors": st_of(shapes[half:]),
                                "model.safetensors.index.json": json.dumps(bad_index, indent=2).encode()}
    foo = st_of([("decoder.layer.0.w", [4, 4]), ("encoder/embed", [16, 4])], "BF16", 2)
    yield "hf-unknown-arch", {"config.json": hf_config("FooForConditionalGeneration", model_type="foo"),
                              "model.safetensors": foo}
    yield "hf-bad-config", {"config.json": b'{\n  "architectures": ["LlamaForCausalLM"],\n  "hidden_size": 8,,\n}\n',
                            "model.safetensors": full}
    yield "hf-bad-heads", {"config.json": hf_config(num_attention_heads=3), "model.safetensors": full}
    yield "hf-bad-tokenizer", {"config.json": hf_config(), "model.safetensors": full,
                               "tokenizer.model": b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10}
    yield "hf-bad-dtype", {"config.json": hf_config(), "model.safetensors": st_of(shapes[:1] + [("x", [2])], "F9")}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/corrupt-convert"
    pack = sys.argv[2] if len(sys.argv) > 2 else "bin/modelfs-pack"
    os.makedirs(out, exist_ok=True)
    for name, blob in files():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
    subprocess.run([pack, "-q", "-f", "--chunk", "64K", os.path.join(out, "valid.safetensors"),
                    os.path.join(out, "valid.safetensors.zst")], check=True)
    for name, content in dirs():
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for fn, blob in content.items():
            with open(os.path.join(d, fn), "wb") as f:
                f.write(blob)


if __name__ == "__main__":
    main()
