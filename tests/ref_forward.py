#!/usr/bin/python3
"""ref_forward.py: a plain numpy forward pass of the llama / qwen2 GGUFs modelfs-run runs,
used as the reference in tests/test_infer_ref.sh.

    ref_forward.py MODEL.gguf --tokens-file T [--logits L] [--act-quant] [--tol REL] [--greedy N]

Reads the model with scripts/mfsgguf.py, dequantizes every matrix to float64 (F32 F16 BF16 Q8_0
Q4_0 Q4_K Q6_K), and computes the logits of every position of the token sequence in T (one id
per line: the prompt, then what the runner generated). With --logits (the runner's
--dump-logits output: float32, one row of n_vocab per evaluated position) it compares every
position: max |runner - ref| <= REL * max|ref logit| of that position (default 2e-3), and the
runner's generated tokens must be the reference's argmax at every step (--greedy N: the last N
ids of T were generated greedily). --act-quant rounds the input of each quantized matrix product
to 8-bit blocks the way the runner does (as llama.cpp's q8_0 / q8_K vec_dot types), so the
comparison isolates the kernels from that deliberate rounding.
Exit 0 if everything agrees, 1 otherwise (the worst position is printed).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import mfsgguf as G  # noqa: E402

QK_K = 256


def f16(b):
    return np.ascontiguousarray(b).view("<f2").astype(np.float64)


def deq(r, t):
    """Tensor t -> float64 array of shape (rows, ne0)."""
    ne0 = t.ne[0]
    rows = int(np.prod(t.ne[1:])) if len(t.ne) > 1 else 1
    raw = r.tensor_bytes(t)
    ty = t.ggml_type
    if ty == 0:
        x = raw.view("<f4").astype(np.float64)
    elif ty == 1:
        x = raw.view("<f2").astype(np.float64)
    elif ty == 30:
        x = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    elif ty == 8:  # Q8_0
        b = raw.reshape(-1, 34)
        x = f16(b[:, :2])[:, :1] * b[:, 2:].view(np.int8).astype(np.float64)
    elif ty == 2:  # Q4_0
        b = raw.reshape(-1, 18)
        q = b[:, 2:]
        v = np.concatenate([q & 15, q >> 4], axis=1).astype(np.float64) - 8
        x = f16(b[:, :2])[:, :1] * v
    elif ty == 12:  # Q4_K
        b = raw.reshape(-1, 144)
        d, dmin = f16(b[:, 0:2]), f16(b[:, 2:4])
        s = b[:, 4:16].astype(np.int32)
        sc = np.empty((b.shape[0], 8), np.int32)
        mn = np.empty((b.shape[0], 8), np.int32)
        sc[:, :4], mn[:, :4] = s[:, 0:4] & 63, s[:, 4:8] & 63
        sc[:, 4:] = (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)
        mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
        qs = b[:, 16:].reshape(-1, 4, 32)
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.float64)
        x = (d[:, :, None] * sc[:, :, None] * q - dmin[:, :, None] * mn[:, :, None]).reshape(-1, 256)
    elif ty == 14:  # Q6_K
        b = raw.reshape(-1, 210)
        ql, qh = b[:, :128].astype(np.int32), b[:, 128:192].astype(np.int32)
        sc = b[:, 192:208].view(np.int8).astype(np.float64)
        d = f16(b[:, 208:210])
        out = np.empty((b.shape[0], 256))
        for n in range(2):
            l0, l1, h = ql[:, 64 * n:64 * n + 32], ql[:, 64 * n + 32:64 * n + 64], qh[:, 32 * n:32 * n + 32]
            vals = [(l0 & 15) | ((h & 3) << 4), (l1 & 15) | (((h >> 2) & 3) << 4),
                    (l0 >> 4) | (((h >> 4) & 3) << 4), (l1 >> 4) | (((h >> 6) & 3) << 4)]
            for j, v in enumerate(vals):
                out[:, 128 * n + 32 * j:128 * n + 32 * j + 32] = v - 32
        x = (d[:, :, None] * np.repeat(sc, 16, axis=1).reshape(-1, 16, 16) * out.reshape(-1, 16, 16)).reshape(-1, 256)
    else:
        raise SystemExit("ref_forward: tensor %s: type %s not supported" % (t.name, G.type_name(ty)))
    return x.reshape(rows, ne0)


def act_quant(x, ty):
    """Round rows of x as the runner's activation formats do (Q8_0 for Q8_0/Q4_0, Q8_K for K-quants)."""
    x = x.astype(np.float32)
    if ty in (8, 2):
        b = x.reshape(-1, 32)
        d = (np.abs(b).max(axis=1) / np.float32(127)).astype(np.float32)
        idv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
        q = np.clip(np.rint(b * idv[:, None]), -127, 127)
        return (q * d[:, None]).astype(np.float64).reshape(x.shape)
    if ty in (12, 14):
        b = x.reshape(-1, QK_K)
        i = np.abs(b).argmax(axis=1)
        mx = b[np.arange(b.shape[0]), i]
        iscale = np.where(mx != 0, np.float32(-127) / np.where(mx != 0, mx, 1), 0).astype(np.float32)
        q = np.clip(np.rint(iscale[:, None] * b), -127, 127)
        d = np.where(iscale != 0, np.float32(1) / np.where(iscale != 0, iscale, 1), 0).astype(np.float32)
        return (q * d[:, None]).astype(np.float64).reshape(x.shape)
    return x.astype(np.float64)


class Model(object):
    def __init__(self, path, aq):
        r = G.GGUFReader(path)
        self.r, self.aq = r, aq
        arch = r.kv("general.architecture")
        if arch not in ("llama", "qwen2"):
            raise SystemExit("ref_forward: architecture %s not supported" % arch)
        self.neox = arch == "qwen2"
        k = lambda s, d=None: r.kv(arch + "." + s, d)  # noqa: E731
        self.E, self.L, self.H = k("embedding_length"), k("block_count"), k("attention.head_count")
        self.KV = k("attention.head_count_kv", self.H)
        self.hd = k("attention.key_length", self.E // self.H)
        self.n_rot = k("rope.dimension_count", self.hd)
        self.theta, self.eps = k("rope.freq_base", 10000.0), k("attention.layer_norm_rms_epsilon", 1e-5)
        scale = 1.0
        if k("rope.scaling.type") == "linear":
            scale = 1.0 / k("rope.scaling.factor", 1.0)
        self.freq_scale = scale
        self.tn = {t.name: t for t in r.tensors}
        self.cache = {}
        self.ff = self.w("rope_freqs.weight").reshape(-1) if "rope_freqs.weight" in self.tn else None

    def w(self, name):
        if name not in self.cache:
            self.cache[name] = (deq(self.r, self.tn[name]), self.tn[name].ggml_type)
        return self.cache[name][0]

    def mm(self, x, name):
        """x (n, k) times matrix `name` (rows, k)^T."""
        W = self.w(name)
        ty = self.cache[name][1]
        if self.aq:
            x = act_quant(x, ty)
        return x @ W.T

    def rope(self, x, pos):
        """x (n, heads, hd); pos (n,)"""
        half = self.n_rot // 2
        i = np.arange(half)
        th = pos[:, None] * self.freq_scale * self.theta ** (-2.0 * i / self.n_rot)
        if self.ff is not None:
            th = th / self.ff[None, :]
        c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
        x = x.copy()
        if self.neox:
            a, b = x[..., :half].copy(), x[..., half:self.n_rot].copy()
            x[..., :half], x[..., half:self.n_rot] = a * c - b * s, a * s + b * c
        else:
            a, b = x[..., 0:self.n_rot:2].copy(), x[..., 1:self.n_rot:2].copy()
            x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2] = a * c - b * s, a * s + b * c
        return x

    def norm(self, x, name):
        return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + self.eps) * self.w(name).reshape(-1)

    def forward(self, toks):
        n = len(toks)
        x = self.w("token_embd.weight")[toks]
        pos = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        rep = self.H // self.KV
        for l in range(self.L):
            p = "blk.%d." % l
            h = self.norm(x, p + "attn_norm.weight")
            q, k, v = self.mm(h, p + "attn_q.weight"), self.mm(h, p + "attn_k.weight"), self.mm(h, p + "attn_v.weight")
            if p + "attn_q.bias" in self.tn:
                q, k, v = (q + self.w(p + "attn_q.bias").reshape(-1), k + self.w(p + "attn_k.bias").reshape(-1),
                           v + self.w(p + "attn_v.bias").reshape(-1))
            q = self.rope(q.reshape(n, self.H, self.hd), pos)
            k = self.rope(k.reshape(n, self.KV, self.hd), pos)
            v = v.reshape(n, self.KV, self.hd)
            out = np.empty((n, self.H, self.hd))
            for hh in range(self.H):
                g = hh // rep
                s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(self.hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[:, hh, :] = s @ v[:, g, :]
            x = x + self.mm(out.reshape(n, -1), p + "attn_output.weight")
            h = self.norm(x, p + "ffn_norm.weight")
            g, u = self.mm(h, p + "ffn_gate.weight"), self.mm(h, p + "ffn_up.weight")
            x = x + self.mm(g / (1 + np.exp(-g)) * u, p + "ffn_down.weight")
        x = self.norm(x, "output_norm.weight")
        return self.mm(x, "output.weight" if "output.weight" in self.tn else "token_embd.weight")


def main():
    ap = argparse.ArgumentParser(description="numpy reference forward pass")
    ap.add_argument("model")
    ap.add_argument("--tokens-file", required=True)
    ap.add_argument("--logits", help="runner's --dump-logits file to compare")
    ap.add_argument("--act-quant", action="store_true")
    ap.add_argument("--tol", type=float, default=2e-3)
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--near-tie", type=float, default=0.0,
                    help="accept a generated token that is not the reference's argmax if its reference logit "
                         "is within NEAR_TIE * max|logit| of the best (default 0: exact)")
    a = ap.parse_args()
    toks = [int(s) for s in open(a.tokens_file).read().split()]
    m = Model(a.model, a.act_quant)
    n_eval = len(toks) - (1 if a.greedy else 0)   # the last generated token is never evaluated
    ref = m.forward(np.array(toks[:n_eval]))
    if not a.logits:
        np.savetxt(sys.stdout, ref[:, :8], fmt="%.6f")
        return 0
    got = np.fromfile(a.logits, dtype="<f4").reshape(-1, ref.shape[1])
    if got.shape[0] != n_eval:
        print("ref_forward: runner dumped %d positions, expected %d" % (got.shape[0], n_eval))
        return 1
    err = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    worst = int(err.argmax())
    ok = err.max() <= a.tol
    print("ref_forward: %d positions, max relative logit error %.3g at position %d (tolerance %.3g)"
          % (n_eval, err.max(), worst, a.tol))
    n_prompt = len(toks) - a.greedy
    ties = 0
    for i in range(a.greedy):
        p = n_prompt - 1 + i
        want, got_id = int(ref[p].argmax()), toks[n_prompt + i]
        if got_id == want:
            continue
        gap = ref[p][want] - ref[p][got_id]
        if gap <= a.near_tie * np.abs(ref[p]).max():
            ties += 1
            print("ref_forward: generated token %d is %d, the reference's argmax is %d: a near-tie (gap %.3g)"
                  % (i, got_id, want, gap))
            continue
        print("ref_forward: generated token %d is %d, the reference's argmax is %d (logit gap %.3g)"
              % (i, got_id, want, gap))
        ok = False
        break
    else:
        if a.greedy:
            print("ref_forward: the %d greedy tokens match the reference%s"
                  % (a.greedy, " (%d near-ties)" % ties if ties else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
