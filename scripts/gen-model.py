#!/usr/bin/python3
"""gen-model.py: generate llama-family test models for modelfs.

Writes a GGUF that llama.cpp runs, and optionally the same weights as a Hugging Face
checkpoint directory (--hf-dir) and/or a lone safetensors file (--safetensors).
Weights are random (deterministic by --seed) or taken from a llama2.c checkpoint.
See docs/generator.md for the conventions followed.
"""

import argparse
import json
import os
import struct
import sys

np = G = None   # numpy and mfsgguf, imported by main() after the arguments are checked

PROG = "gen-model.py"
DATA_DIR = os.environ.get("MODELFS_SHARED_DATA",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
VOCABS = {"llama-spm": "ggml-vocab-llama-spm.gguf", "gpt-2": "ggml-vocab-gpt-2.gguf"}
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 8, 30   # = mfsgguf's
TYPES = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16, "q8_0": GGML_Q8_0, "q4_0": GGML_Q4_0}
ST_DTYPE = {GGML_F32: "F32", GGML_F16: "F16", GGML_BF16: "BF16"}
TORCH_DTYPE = {GGML_F32: "float32", GGML_F16: "float16", GGML_BF16: "bfloat16"}
GGML_QUANT_VERSION = 2
TRANSFORMERS_VERSION = "4.44.0"

# sentencepiece piece types (also llama.cpp's token types)
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6


class InputError(Exception):
    """Bad input: one line on stderr, exit 1."""


# ----------------------------------------------------------------------------
# model description
# ----------------------------------------------------------------------------
class T(object):
    """One tensor: HF name and shape ([out, in] / [n]), GGUF name and ne (reversed)."""
    __slots__ = ("hf", "gguf", "shape", "ne", "kind", "perm_heads", "gtype", "src")

    def __init__(self, hf, gguf, shape, kind, perm_heads=None, src=None):
        self.hf, self.gguf, self.shape, self.kind = hf, gguf, list(shape), kind
        self.ne = list(reversed(shape))
        self.perm_heads = perm_heads   # llama q/k: heads for llama.cpp's permute
        self.src = src                  # llama2c: (offset in floats, count)


def model_tensors(cfg):
    """All tensors, in the order convert_hf_to_gguf.py writes them: HF names sorted
    bytewise (safetensors' safe_open().keys() order; shards are contiguous runs of it)."""
    d, L, H, KV, F, V = cfg["dim"], cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["ffn"], cfg["vocab"]
    hd = d // H
    kvd = KV * hd
    llama = cfg["arch"] == "llama"
    ts = [T("model.embed_tokens.weight", "token_embd.weight", [V, d], "mat"),
          T("model.norm.weight", "output_norm.weight", [d], "norm")]
    if not cfg["tied"]:
        ts.append(T("lm_head.weight", "output.weight", [V, d], "mat"))
    for i in range(L):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        ts += [
            T(p + "input_layernorm.weight", b + "attn_norm.weight", [d], "norm"),
            T(p + "self_attn.q_proj.weight", b + "attn_q.weight", [H * hd, d], "mat", H if llama else None),
            T(p + "self_attn.k_proj.weight", b + "attn_k.weight", [kvd, d], "mat", KV if llama else None),
            T(p + "self_attn.v_proj.weight", b + "attn_v.weight", [kvd, d], "mat"),
            T(p + "self_attn.o_proj.weight", b + "attn_output.weight", [d, H * hd], "mat"),
            T(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", [d], "norm"),
            T(p + "mlp.gate_proj.weight", b + "ffn_gate.weight", [F, d], "mat"),
            T(p + "mlp.up_proj.weight", b + "ffn_up.weight", [F, d], "mat"),
            T(p + "mlp.down_proj.weight", b + "ffn_down.weight", [d, F], "mat"),
        ]
        if not llama:   # qwen2: q/k/v biases
            ts += [T(p + "self_attn.q_proj.bias", b + "attn_q.bias", [H * hd], "bias"),
                   T(p + "self_attn.k_proj.bias", b + "attn_k.bias", [kvd], "bias"),
                   T(p + "self_attn.v_proj.bias", b + "attn_v.bias", [kvd], "bias")]
    ts.sort(key=lambda t: t.hf.encode("utf-8"))
    for t in ts:
        t.gtype = cfg["type"] if len(t.shape) == 2 else G.F32
    return ts


def permute_rows(w, n_head):
    """llama.cpp's LlamaModel.permute (HF row order -> GGUF row order), on axis 0."""
    r = w.shape[0]
    return w.reshape(n_head, 2, r // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_rows(w, n_head):
    """Inverse of permute_rows (GGUF row order -> HF row order)."""
    r = w.shape[0]
    return w.reshape(n_head, r // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def id_to_title(s):
    """gguf-py's Metadata.id_to_title: '-' -> ' ', all-lowercase words that are not
    versions (v1.2) or start with a digit get str.title()."""
    import re
    return " ".join(w.title() if w.islower() and not re.match(r"^(v\d+(?:\.\d+)*|\d.*)$", w) else w
                    for w in s.strip().replace("-", " ").split())


def size_label(n):
    """gguf-py's model_weight_count_rounded_notation(n, min_digits=2)."""
    if n > 1e12:
        x, s = n * 1e-12, "T"
    elif n > 1e9:
        x, s = n * 1e-9, "B"
    elif n > 1e6:
        x, s = n * 1e-6, "M"
    else:
        x, s = n * 1e-3, "K"
    fix = max(2 - len(str(round(x)).lstrip("0")), 0)
    return "%.*f%s" % (fix, x, s)


# ----------------------------------------------------------------------------
# tokenizers
# ----------------------------------------------------------------------------
SPECIAL_KEYS = [  # convert_hf_to_gguf / SpecialVocab order, GGUF key, HF config name
    ("bos", "tokenizer.ggml.bos_token_id"), ("eos", "tokenizer.ggml.eos_token_id"),
    ("unk", "tokenizer.ggml.unknown_token_id"), ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", "tokenizer.ggml.padding_token_id"), ("cls", "tokenizer.ggml.cls_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id")]


_VOCAB_CACHE = {}


def load_vocab(name):
    """The vocab GGUF's tokenizer.* kvs and token count (memoized for in-process use)."""
    if name not in _VOCAB_CACHE:
        _VOCAB_CACHE[name] = _load_vocab(name)
    return _VOCAB_CACHE[name]


def _load_vocab(name):
    path = os.path.join(DATA_DIR, VOCABS[name])
    try:
        r = G.GGUFReader(path)
    except (OSError, G.GGUFError) as e:
        raise InputError("%s: cannot read vocab: %s" % (path, e))
    kvs = [kv for kv in r.kvs if kv.key.startswith("tokenizer.")]
    toks = r.kv("tokenizer.ggml.tokens")
    if toks is None:
        raise InputError("%s: no tokenizer.ggml.tokens" % path)
    return kvs, len(toks)


def synth_spm_vocab(n):
    """SentencePiece-style 'llama' vocab of n tokens: <unk>, <s>, </s>, <0x00>..<0xFF>
    (type BYTE), then filler pieces (single characters, '▁'-prefixed words)."""
    if n < 259 + 1:
        raise InputError("llama2c vocab size %d is too small for a byte-fallback vocab (>= 260)" % n)
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    types = [TT_UNKNOWN, TT_CONTROL, TT_CONTROL] + [TT_BYTE] * 256
    seen = set(toks)
    lower = "abcdefghijklmnopqrstuvwxyz"
    cands = ["\u2581"] + ["\u2581" + c for c in lower] + list(lower) + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    cands += list("0123456789.,!?'\"-:;()")
    cands += ["\u2581" + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    cands += [a + b for a in lower for b in lower]
    cands += ["\u2581" + a + b for a in lower for b in lower]
    fill = []
    for c in cands:
        if len(toks) + len(fill) >= n:
            break
        if c not in seen:
            seen.add(c)
            fill.append(c)
    i = 0
    while len(toks) + len(fill) < n:
        c = "\u2581w%d" % i
        i += 1
        if c not in seen:
            seen.add(c)
            fill.append(c)
    scores = [0.0] * len(toks) + [-float(i) for i in range(len(fill))]
    toks += fill
    types += [TT_NORMAL] * len(fill)
    kvs = [
        G.KV("tokenizer.ggml.model", G.STRING, "llama"),
        G.KV("tokenizer.ggml.pre", G.STRING, "default"),
        G.KV("tokenizer.ggml.tokens", G.ARRAY, G.Array(G.STRING, toks)),
        G.KV("tokenizer.ggml.scores", G.ARRAY, G.Array(G.FLOAT32, scores)),
        G.KV("tokenizer.ggml.token_type", G.ARRAY, G.Array(G.INT32, types)),
        G.KV("tokenizer.ggml.bos_token_id", G.UINT32, 1),
        G.KV("tokenizer.ggml.eos_token_id", G.UINT32, 2),
        G.KV("tokenizer.ggml.unknown_token_id", G.UINT32, 0),
        G.KV("tokenizer.ggml.add_bos_token", G.BOOL, True),
        G.KV("tokenizer.ggml.add_eos_token", G.BOOL, False),
    ]
    return kvs


# -- minimal protobuf, for a synthetic sentencepiece tokenizer.model ----------
def _pb_varint(b, p):
    r = s = 0
    while True:
        c = b[p]
        p += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, p


def _pb_fields(b):
    """Yield (field, wire, value, raw) for one protobuf message."""
    p = 0
    while p < len(b):
        start = p
        k, p = _pb_varint(b, p)
        f, w = k >> 3, k & 7
        if w == 0:
            v, p = _pb_varint(b, p)
        elif w == 1:
            v, p = b[p:p + 8], p + 8
        elif w == 5:
            v, p = b[p:p + 4], p + 4
        elif w == 2:
            n, p = _pb_varint(b, p)
            v, p = b[p:p + n], p + n
        else:
            raise InputError("unsupported protobuf wire type %d" % w)
        yield f, w, v, b[start:p]


def _pb_enc_varint(x):
    x = int(x) & ((1 << 64) - 1)
    out = bytearray()
    while True:
        c = x & 0x7F
        x >>= 7
        if x:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _pb_key(f, w):
    return _pb_enc_varint((f << 3) | w)


def _pb_bytes(f, data):
    return _pb_key(f, 2) + _pb_enc_varint(len(data)) + data


def synth_tokenizer_model(tokens, scores, types):
    """A sentencepiece ModelProto with our pieces; trainer_spec / normalizer_spec are
    taken from the shared LLaMA tokenizer.model (vocab_size patched)."""
    src = os.path.join(DATA_DIR, "llama-tokenizer.model")
    try:
        with open(src, "rb") as f:
            base = f.read()
    except OSError as e:
        raise InputError("%s: %s" % (src, e.strerror))
    out = bytearray()
    for tok, sc, ty in zip(tokens, scores, types):
        m = _pb_bytes(1, tok.encode("utf-8")) + _pb_key(2, 5) + struct.pack("<f", sc)
        if ty != TT_NORMAL:
            m += _pb_key(3, 0) + _pb_enc_varint(ty)
        out += _pb_bytes(1, m)
    for f, w, v, raw in _pb_fields(base):
        if f == 1:
            continue
        if f == 2:   # TrainerSpec: patch vocab_size (field 4)
            ts = bytearray()
            for f2, w2, v2, raw2 in _pb_fields(v):
                ts += (_pb_key(4, 0) + _pb_enc_varint(len(tokens))) if f2 == 4 else raw2
            out += _pb_bytes(2, bytes(ts))
        else:
            out += raw
    return bytes(out)


def kv_value(kvs, key):
    for kv in kvs:
        if kv.key == key:
            return kv.value
    return None


# ----------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------
class RandomSource(object):
    """Random weights like a real model's: matrices N(0, 0.02), norms 1 + N(0, 0.02),
    biases N(0, 0.02).  One default_rng(seed) stream, drawn in tensor write order."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def get(self, t):
        a = self.rng.standard_normal(t.shape, dtype=np.float32)
        a *= np.float32(0.02)
        if t.kind == "norm":
            a += np.float32(1.0)
        return a


class Llama2cSource(object):
    """Weights from a llama2.c checkpoint (header: dim, hidden_dim, n_layers, n_heads,
    n_kv_heads, vocab_size (negative: unshared classifier), seq_len; then float32)."""

    def __init__(self, path):
        self.path = path
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                hdr = f.read(28)
        except OSError as e:
            raise InputError("%s: %s" % (path, e.strerror))
        if len(hdr) < 28:
            raise InputError("%s: too short for a llama2.c checkpoint" % path)
        dim, hidden, L, H, KV, V, S = struct.unpack("<7i", hdr)
        shared = V > 0
        V = abs(V)
        if min(dim, hidden, L, H, KV, V, S) <= 0 or dim % H or H % KV or (dim // H) % 2 \
                or max(dim, hidden, V, S) > 1 << 20 or L > 1024:
            raise InputError("%s: implausible llama2.c header %r" % (path, (dim, hidden, L, H, KV, V, S)))
        hd = dim // H
        kvd = KV * hd
        self.cfg = dict(dim=dim, ffn=hidden, layers=L, heads=H, kv_heads=KV, vocab=V, ctx=S, tied=shared)
        off = 0
        lay = {}

        def take(name, n):
            nonlocal off
            lay[name] = off
            off += n
        take("tok", V * dim)
        take("rms_att", L * dim)
        take("wq", L * dim * dim)
        take("wk", L * dim * kvd)
        take("wv", L * dim * kvd)
        take("wo", L * dim * dim)
        take("rms_ffn", L * dim)
        take("w1", L * dim * hidden)
        take("w2", L * hidden * dim)
        take("w3", L * dim * hidden)
        take("rms_final", dim)
        take("freq_cis", S * hd)
        if not shared:
            take("wcls", V * dim)
        need = 28 + 4 * off
        if size < need:
            raise InputError("%s: truncated: %d bytes, header needs %d" % (path, size, need))
        self.lay = lay
        self.data = np.memmap(path, dtype="<f4", mode="r", offset=28, shape=(off,))
        self.per_layer = {"attn_norm": ("rms_att", dim), "attn_q": ("wq", dim * dim),
                          "attn_k": ("wk", dim * kvd), "attn_v": ("wv", dim * kvd),
                          "attn_output": ("wo", dim * dim), "ffn_norm": ("rms_ffn", dim),
                          "ffn_gate": ("w1", dim * hidden), "ffn_down": ("w2", hidden * dim),
                          "ffn_up": ("w3", dim * hidden)}

    def get(self, t):
        n = 1
        for s in t.shape:
            n *= s
        g = t.gguf
        if g == "token_embd.weight":
            o = self.lay["tok"]
        elif g == "output_norm.weight":
            o = self.lay["rms_final"]
        elif g == "output.weight":
            o = self.lay["wcls"]
        else:
            _, i, what, _ = g.split(".")
            base, per = self.per_layer[what]
            o = self.lay[base] + int(i) * per
        # llama2.c stores [out, in] row-major, q/k already in GGUF's interleaved order
        return np.array(self.data[o:o + n], dtype=np.float32).reshape(t.shape)


# ----------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------
def gguf_kvs(cfg, name, tok_kvs, tensors, align):
    a = cfg["arch"]
    kvs = [("general.architecture", G.STRING, a),
           ("general.type", G.STRING, "model"),
           ("general.name", G.STRING, name)]
    n_params = 0
    for t in tensors:
        n = 1
        for s in t.shape:
            n *= s
        n_params += n
    kvs.append(("general.size_label", G.STRING, size_label(n_params)))
    kvs += [("%s.block_count" % a, G.UINT32, cfg["layers"]),
            ("%s.context_length" % a, G.UINT32, cfg["ctx"]),
            ("%s.embedding_length" % a, G.UINT32, cfg["dim"]),
            ("%s.feed_forward_length" % a, G.UINT32, cfg["ffn"]),
            ("%s.attention.head_count" % a, G.UINT32, cfg["heads"]),
            ("%s.attention.head_count_kv" % a, G.UINT32, cfg["kv_heads"]),
            ("%s.rope.freq_base" % a, G.FLOAT32, float(np.float32(cfg["rope_theta"]))),
            ("%s.attention.layer_norm_rms_epsilon" % a, G.FLOAT32, float(np.float32(cfg["rms_eps"]))),
            ("general.file_type", G.UINT32, G.FILE_TYPE[cfg["type"]])]
    if a == "llama":
        kvs += [("llama.vocab_size", G.UINT32, cfg["vocab"]),
                ("llama.rope.dimension_count", G.UINT32, cfg["dim"] // cfg["heads"])]
    kvs += [(kv.key, kv.vtype, kv.value) for kv in tok_kvs]
    kvs.append(("general.quantization_version", G.UINT32, GGML_QUANT_VERSION))
    if align is not None:
        kvs.append(("general.alignment", G.UINT32, align))
    return kvs


def special_ids(tok_kvs):
    out = []
    for typ, key in SPECIAL_KEYS:
        v = kv_value(tok_kvs, key)
        if v is not None:
            out.append((typ, int(v)))
    return out


def write_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


HF_OWN = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.model",
          "tokenizer.json", "special_tokens_map.json", "model.safetensors.index.json")


def prepare_hf_dir(d):
    if os.path.isdir(d):
        for fn in os.listdir(d):
            ours = fn in HF_OWN or (fn.startswith("model") and fn.endswith(".safetensors"))
            if not ours:
                raise InputError("%s: directory has other files (%s); use an empty or new directory" % (d, fn))
        for fn in os.listdir(d):
            os.unlink(os.path.join(d, fn))
    elif os.path.exists(d):
        raise InputError("%s: exists and is not a directory" % d)
    else:
        os.makedirs(d)


def write_hf_meta(d, cfg, tok_kvs, vocab_name, st_dtype):
    llama = cfg["arch"] == "llama"
    toks = kv_value(tok_kvs, "tokenizer.ggml.tokens").items
    types = kv_value(tok_kvs, "tokenizer.ggml.token_type")
    ids = special_ids(tok_kvs)
    idmap = dict(ids)
    c = {"architectures": ["LlamaForCausalLM" if llama else "Qwen2ForCausalLM"]}
    if llama:
        c["attention_bias"] = False
    c["attention_dropout"] = 0.0
    for typ, i in ids:   # convert_hf_to_gguf's SpecialVocab reads <typ>_token_id from here
        c["%s_token_id" % typ] = i
    c.update({
        "hidden_act": "silu",
        "hidden_size": cfg["dim"],
        "initializer_range": 0.02,
        "intermediate_size": cfg["ffn"],
        "max_position_embeddings": cfg["ctx"],
    })
    if llama:
        c["mlp_bias"] = False
    else:
        c["max_window_layers"] = cfg["layers"]
    c["model_type"] = "llama" if llama else "qwen2"
    c.update({
        "num_attention_heads": cfg["heads"],
        "num_hidden_layers": cfg["layers"],
        "num_key_value_heads": cfg["kv_heads"],
    })
    if llama:
        c["pretraining_tp"] = 1
    c["rms_norm_eps"] = cfg["rms_eps"]
    c["rope_scaling"] = None
    c["rope_theta"] = float(cfg["rope_theta"])
    if not llama:
        c["sliding_window"] = cfg["ctx"]
    c.update({
        "tie_word_embeddings": bool(cfg["tied"]),
        "torch_dtype": TORCH_DTYPE[cfg["type"]],
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
    })
    if not llama:
        c["use_sliding_window"] = False
    c["vocab_size"] = cfg["vocab"]
    write_json(os.path.join(d, "config.json"), c)

    gc = {"_from_model_config": True}
    for typ in ("bos", "eos"):
        if typ in idmap:
            gc["%s_token_id" % typ] = idmap[typ]
    gc["transformers_version"] = TRANSFORMERS_VERSION
    write_json(os.path.join(d, "generation_config.json"), gc)

    tc = {}
    stm = {}
    model = kv_value(tok_kvs, "tokenizer.ggml.model")
    for typ in ("bos", "eos"):
        v = kv_value(tok_kvs, "tokenizer.ggml.add_%s_token" % typ)
        if v is not None:
            tc["add_%s_token" % typ] = bool(v)
    for typ, i in ids:
        tc["%s_token" % typ] = toks[i]
        stm["%s_token" % typ] = toks[i]
    tc["clean_up_tokenization_spaces"] = False
    tc["model_max_length"] = cfg["ctx"]
    if model == "llama":
        tc["legacy"] = False
        tc["sp_model_kwargs"] = {}
        tc["tokenizer_class"] = "LlamaTokenizer"
    else:
        tc["tokenizer_class"] = "GPT2Tokenizer"
    # no added_tokens_decoder (convert would retype <unk>/<s>/</s> as CONTROL with
    # score -1000) and no add_prefix_space (convert would add add_space_prefix)
    write_json(os.path.join(d, "tokenizer_config.json"), tc)
    write_json(os.path.join(d, "special_tokens_map.json"), stm)

    if model == "llama":
        if vocab_name == "llama-spm":
            src = os.path.join(DATA_DIR, "llama-tokenizer.model")
            try:
                with open(src, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise InputError("%s: %s" % (src, e.strerror))
        else:
            data = synth_tokenizer_model([str(t) for t in toks],
                                         [float(x) for x in kv_value(tok_kvs, "tokenizer.ggml.scores").items],
                                         [int(x) for x in types.items])
        with open(os.path.join(d, "tokenizer.model"), "wb") as f:
            f.write(data)
    elif model == "gpt2":
        write_gpt2_tokenizer_json(os.path.join(d, "tokenizer.json"), tok_kvs)
    else:
        raise InputError("tokenizer model %r cannot be written as a HF tokenizer" % model)


def write_gpt2_tokenizer_json(path, tok_kvs):
    toks = list(kv_value(tok_kvs, "tokenizer.ggml.tokens").items)
    types = kv_value(tok_kvs, "tokenizer.ggml.token_type").items
    merges = list(kv_value(tok_kvs, "tokenizer.ggml.merges").items)
    vocab = {}
    for i, t in enumerate(toks):
        if t in vocab:
            raise InputError("duplicate token %r in the gpt-2 vocab" % t)
        vocab[t] = i
    types = np.asarray(types)
    added = [{"id": int(i), "content": toks[i], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": bool(types[i] == TT_CONTROL), "special": bool(types[i] == TT_CONTROL)}
             for i in np.nonzero((types == TT_CONTROL) | (types == TT_USER_DEFINED))[0]]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": bl,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }
    write_json(path, tj, indent=None)   # indent=None: json's fast C encoder


def split_shards(tensors, n, nbytes):
    """Contiguous runs of the sorted tensor list, balanced by bytes, none empty."""
    if n > len(tensors):
        raise InputError("--shards %d is more than the %d tensors" % (n, len(tensors)))
    total = sum(nbytes)
    starts = [0]
    cum = [0]
    for b in nbytes:
        cum.append(cum[-1] + b)
    for k in range(1, n):
        target = total * k / n
        j = starts[-1] + 1
        while j < len(tensors) and cum[j] < target:
            j += 1
        j = min(j, len(tensors) - (n - k))
        starts.append(j)
    starts.append(len(tensors))
    return [(starts[k], starts[k + 1]) for k in range(n)]


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Generate a llama-family test model as GGUF (and optionally as a Hugging Face "
                    "checkpoint directory and/or a lone safetensors file) with random weights "
                    "(deterministic by --seed) or weights from a llama2.c checkpoint.",
        epilog="Exit status: 0 ok, 1 bad input, 2 bad usage. See docs/generator.md.")
    ap.add_argument("--out", required=True, metavar="M.gguf", help="GGUF file to write")
    ap.add_argument("--hf-dir", metavar="DIR", help="also write the weights as a Hugging Face checkpoint "
                    "directory (config.json, safetensors, tokenizer); f32/f16/bf16 only")
    ap.add_argument("--safetensors", metavar="FILE", help="also write a lone safetensors file with the "
                    "GGUF's tensors under their GGUF names (row-major shapes, no permutation)")
    ap.add_argument("--shards", type=int, metavar="N", help="split the HF safetensors into N files "
                    "model-0000K-of-0000N.safetensors plus model.safetensors.index.json")
    ap.add_argument("--vocab", choices=sorted(VOCABS), help="tokenizer to copy (default llama-spm)")
    ap.add_argument("--arch", choices=["llama", "qwen2"], default="llama", help="architecture (default llama)")
    ap.add_argument("--type", choices=list(TYPES), default="f16",
                    help="type of the 2-D weights (default f16); 1-D tensors are always F32")
    ap.add_argument("--dim", type=int, help="embedding length (default 64)")
    ap.add_argument("--layers", type=int, help="number of blocks (default 2)")
    ap.add_argument("--heads", type=int, help="attention heads (default 4)")
    ap.add_argument("--kv-heads", type=int, help="key/value heads (default 2)")
    ap.add_argument("--ffn", type=int, help="feed-forward length (default 172)")
    ap.add_argument("--ctx", type=int, help="context length (default 256)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--tied", action="store_true", default=None,
                    help="no output.weight / lm_head: the output reuses token_embd")
    ap.add_argument("--rope-theta", type=float, default=10000.0, help="RoPE base frequency (default 10000)")
    ap.add_argument("--rms-eps", type=float, default=1e-5, help="RMS norm epsilon (default 1e-5)")
    ap.add_argument("--name", help="general.name (default: the --hf-dir name, else the --out name without .gguf, "
                    "title-cased as convert_hf_to_gguf.py does)")
    ap.add_argument("--align", type=int, metavar="N",
                    help="write general.alignment = N (power of two >= 32; default: none, i.e. 32)")
    ap.add_argument("--llama2c", metavar="FILE", help="take shapes and weights from a llama2.c checkpoint, "
                    "with a synthetic SentencePiece-style tokenizer of its vocab size")
    a = ap.parse_args(argv)

    shape_opts = ("dim", "layers", "heads", "kv_heads", "ffn", "ctx", "tied")
    if a.llama2c:
        given = [o for o in shape_opts if getattr(a, o) is not None]
        if given:
            ap.error("--%s cannot be combined with --llama2c (taken from the checkpoint)"
                     % given[0].replace("_", "-"))
        if a.vocab:
            ap.error("--vocab cannot be combined with --llama2c (it gets a synthetic vocab of its size)")
    defaults = dict(dim=64, layers=2, heads=4, kv_heads=2, ffn=172, ctx=256, tied=False)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.vocab is None:
        a.vocab = "llama-spm"
    for o in ("dim", "layers", "heads", "kv_heads", "ffn", "ctx"):
        if getattr(a, o) <= 0:
            ap.error("--%s must be positive" % o.replace("_", "-"))
    if a.shards is not None:
        if a.shards < 1:
            ap.error("--shards must be >= 1")
        if not a.hf_dir:
            ap.error("--shards needs --hf-dir")
    if a.align is not None and (a.align < 32 or a.align & (a.align - 1)):
        ap.error("--align must be a power of two >= 32")
    if a.type in ("q8_0", "q4_0") and (a.hf_dir or a.safetensors):
        ap.error("--type %s cannot be written as safetensors (%s): use f32, f16 or bf16"
                 % (a.type, "--hf-dir" if a.hf_dir else "--safetensors"))
    if not (a.rms_eps > 0) or not (a.rope_theta > 0):
        ap.error("--rms-eps and --rope-theta must be positive")
    return a


def run(a):
    gtype = TYPES[a.type]
    if a.llama2c:
        src = Llama2cSource(a.llama2c)
        cfg = dict(src.cfg)
        tok_kvs = synth_spm_vocab(cfg["vocab"])
        vocab_name = "synthetic"
    else:
        tok_kvs, n_vocab = load_vocab(a.vocab)
        cfg = dict(dim=a.dim, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads, ffn=a.ffn,
                   ctx=a.ctx, tied=bool(a.tied), vocab=n_vocab)
        src = None
        vocab_name = a.vocab
    cfg.update(arch=a.arch, type=gtype, rope_theta=a.rope_theta, rms_eps=a.rms_eps)
    d, H, KV = cfg["dim"], cfg["heads"], cfg["kv_heads"]
    if d % H:
        raise InputError("--dim %d is not a multiple of --heads %d" % (d, H))
    if H % KV:
        raise InputError("--heads %d is not a multiple of --kv-heads %d" % (H, KV))
    if (d // H) % 2:
        raise InputError("head size %d (dim/heads) must be even for RoPE" % (d // H))

    tensors = model_tensors(cfg)
    blck = G.GGML_TYPES[gtype][1]
    for t in tensors:
        if t.gtype == gtype and t.ne[0] % blck:
            raise InputError("--type %s needs ne0 %% %d == 0, but %s has ne0 = %d" % (a.type, blck, t.gguf, t.ne[0]))

    if a.name:
        name = a.name
    else:   # what convert_hf_to_gguf.py falls back to: the HF directory's name, title-cased
        if a.hf_dir:
            base = os.path.basename(os.path.normpath(a.hf_dir))
        else:
            base = os.path.basename(a.out)
            if base.endswith(".gguf"):
                base = base[:-5]
        name = id_to_title(base) or "model"

    if src is None:
        src = RandomSource(a.seed)

    # --- set up every output before generating anything
    w = G.GGUFWriter(a.out, alignment=a.align)
    for k, vt, v in gguf_kvs(cfg, name, tok_kvs, tensors, a.align):
        w.add_kv(k, vt, v)
    for t in tensors:
        w.add_tensor(t.gguf, t.gtype, t.ne)

    lone = None
    if a.safetensors:
        lone = G.SafetensorsWriter(a.safetensors)
        for t in tensors:
            lone.add_tensor(t.gguf, ST_DTYPE[t.gtype], t.shape)

    shard_of = None
    shards = []
    if a.hf_dir:
        prepare_hf_dir(a.hf_dir)
        write_hf_meta(a.hf_dir, cfg, tok_kvs, vocab_name, ST_DTYPE[gtype])
        item = G.ST_DTYPE_SIZE[ST_DTYPE[gtype]]
        nbytes = [item * int(np.prod(t.shape)) for t in tensors]
        n = a.shards or 1
        runs = split_shards(tensors, n, nbytes)
        shard_of = [0] * len(tensors)
        for k, (s, e) in enumerate(runs):
            fn = "model.safetensors" if n == 1 else "model-%05d-of-%05d.safetensors" % (k + 1, n)
            sw = G.SafetensorsWriter(os.path.join(a.hf_dir, fn))
            for i in range(s, e):
                sw.add_tensor(tensors[i].hf, ST_DTYPE[gtype], tensors[i].shape)
                shard_of[i] = k
            shards.append((fn, sw))
        if n > 1:
            idx = {"metadata": {"total_size": sum(nbytes)},
                   "weight_map": {tensors[i].hf: shards[shard_of[i]][0] for i in range(len(tensors))}}
            write_json(os.path.join(a.hf_dir, "model.safetensors.index.json"), idx)

    writers = [w] + ([lone] if lone else []) + [sw for _, sw in shards]
    try:
        for x in writers:
            x.begin()
        for i, t in enumerate(tensors):
            v = src.get(t)                       # float32, [out, in], GGUF row order
            if t.gtype == G.F32 and gtype in (G.F16, G.BF16):
                # 1-D tensors: the HF checkpoint stores them in its dtype, so the GGUF
                # gets exactly those values widened back to F32 (as convert does)
                v = G.bf16_to_fp32(G.fp32_to_bf16(v)) if gtype == G.BF16 else \
                    G.fp32_to_fp16(v).astype(np.float32)
            gbytes = G.encode(v, t.gtype)
            w.write_data(gbytes)
            if lone:
                lone.write_data(gbytes)
            if shards:
                hb = gbytes if t.gtype == gtype else G.encode(v, gtype)
                if t.perm_heads:
                    hb = unpermute_rows(hb.reshape(t.shape), t.perm_heads)
                shards[shard_of[i]][1].write_data(hb)
            del v, gbytes
        for x in writers:
            x.finish()
    except BaseException:
        for x in writers:
            x.abort()
        raise
    print("%s: wrote %s (%d tensors, %s, vocab %s %d)%s%s" % (
        PROG, a.out, len(tensors), a.type, vocab_name, cfg["vocab"],
        (", HF dir %s (%d shard%s)" % (a.hf_dir, len(shards), "s" if len(shards) > 1 else "")) if a.hf_dir else "",
        (", safetensors %s" % a.safetensors) if a.safetensors else ""))


def main(argv):
    global np, G
    a = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy
    import mfsgguf
    np, G = numpy, mfsgguf
    assert (G.F32, G.F16, G.Q4_0, G.Q8_0, G.BF16) == (GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_BF16)
    try:
        run(a)
    except InputError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return 1
    except G.GGUFError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return 1
    except OSError as e:
        sys.stderr.write("%s: %s: %s\n" % (PROG, e.filename or "", e.strerror))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
