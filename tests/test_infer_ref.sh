#!/bin/bash
# modelfs-run against the numpy reference (tests/ref_forward.py) on small generated models of
# every supported type: llama and qwen2, tied and untied output, GQA, Llama 3 rope factors, one
# and two threads, every kernel level this CPU has.
#
# For each model: modelfs-run evaluates an 8-token prompt and generates 32 tokens greedily,
# dumping the logits of every evaluated position; the reference recomputes them from the GGUF
# (weights dequantized to float64) and checks:
#   - every position: max |runner - reference| <= TOL * max |reference logit|,
#     TOL = 1e-4 for F32/F16/BF16 (observed ~3e-7) and 3e-2 for quantized matrices (observed
#     up to ~1.5e-2: the runner, like llama.cpp, rounds each matrix input to 8-bit blocks, and a
#     random-weight model amplifies that rounding; the reference applies the same rounding
#     (--act-quant), so what remains are the rare last-bit flips of that rounding);
#   - the 32 generated tokens are the reference's argmax at each step: exactly for float types;
#     for quantized types a step may pick another token only when the two are a near-tie within
#     TOL (random-weight models have flat logits), which the output lists.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MFS_BIN:-bin}
PY=/usr/bin/python3
GEN=${MFS_GEN_MODEL:-scripts/gen-model.py}
for f in "$BIN/modelfs-run" "$BIN/modelfs-quantize" "$GEN"; do
    [ -e "$f" ] || { echo "test_infer_ref: missing $f"; exit 1; }
done
$PY -c 'import numpy' || { echo "test_infer_ref: $PY has no numpy"; exit 1; }
tmp=$(mktemp -d /tmp/mfs-infer-ref.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

PROMPT=1,450,4996,17354,1701,5321,975,278
shape=(--dim 256 --ffn 512 --heads 4 --kv-heads 2 --layers 2 --ctx 128)
fails=0

gen() { # gen OUT ARGS...
    local out=$1
    shift
    $PY "$GEN" --out "$out" "${shape[@]}" "$@" >/dev/null
}

check() { # check NAME MODEL TOL NEAR_TIE [env...] -- modelfs-run args
    local name=$1 model=$2 tol=$3 near=$4
    shift 4
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local aq=()
    [ "$near" != 0 ] && aq=(--act-quant)
    if ! env "${envs[@]}" "$BIN/modelfs-run" -m "$model" --tokens $PROMPT -n 32 --temp 0 --ignore-eos \
        --dump-logits "$tmp/logits" --dump-tokens "$tmp/tokens" "$@" >/dev/null 2>"$tmp/err"; then
        echo "FAIL $name: modelfs-run failed: $(cat "$tmp/err")"
        fails=$((fails + 1))
        return
    fi
    if out=$($PY tests/ref_forward.py "$model" --tokens-file "$tmp/tokens" --logits "$tmp/logits" --greedy 32 \
        --tol "$tol" --near-tie "$near" "${aq[@]}" 2>&1); then
        echo "ok   $name: $(echo "$out" | tr '\n' ' ')"
    else
        echo "FAIL $name: $out"
        fails=$((fails + 1))
    fi
}

gen "$tmp/l-f32.gguf" --type f32 --seed 1
gen "$tmp/l-f16-tied.gguf" --type f16 --tied --seed 2
gen "$tmp/l-bf16.gguf" --type bf16 --seed 3
gen "$tmp/q-f32.gguf" --arch qwen2 --type f32 --seed 4 --rope-theta 1000000
gen "$tmp/q-q8_0.gguf" --arch qwen2 --type q8_0 --seed 5
gen "$tmp/l-q4_0-tied.gguf" --type q4_0 --tied --seed 6
gen "$tmp/l-base.gguf" --type f32 --seed 7
gen "$tmp/q-base.gguf" --arch qwen2 --type f32 --seed 8 --tied
"$BIN/modelfs-quantize" -t 2 "$tmp/l-base.gguf" "$tmp/l-q4_k.gguf" q4_k
"$BIN/modelfs-quantize" -t 2 "$tmp/q-base.gguf" "$tmp/q-q6_k-tied.gguf" q6_k
"$BIN/modelfs-quantize" -t 2 "$tmp/l-base.gguf" "$tmp/l-q4_k_m.gguf" q4_k_m
"$BIN/modelfs-quantize" -t 2 "$tmp/l-base.gguf" "$tmp/l-q8_0.gguf" q8_0
$PY tests/add-rope-freqs.py "$tmp/l-f32.gguf" "$tmp/l-f32-llama3.gguf" 8 1 4 64

check "llama F32 GQA untied" "$tmp/l-f32.gguf" 1e-4 0 -- -t 1
check "llama F32 Llama 3 rope factors" "$tmp/l-f32-llama3.gguf" 1e-4 0 -- -t 2
check "llama F16 tied" "$tmp/l-f16-tied.gguf" 1e-4 0 -- -t 2
check "llama BF16" "$tmp/l-bf16.gguf" 1e-4 0 -- -t 2
check "qwen2 F32 (biases, NEOX rope)" "$tmp/q-f32.gguf" 1e-4 0 -- -t 2
check "qwen2 Q8_0" "$tmp/q-q8_0.gguf" 3e-2 3e-2 -- -t 2
check "llama Q8_0" "$tmp/l-q8_0.gguf" 3e-2 3e-2 -- -t 2
check "llama Q4_0 tied" "$tmp/l-q4_0-tied.gguf" 3e-2 3e-2 -- -t 2
check "llama Q4_K" "$tmp/l-q4_k.gguf" 3e-2 3e-2 -- -t 2
check "qwen2 Q6_K tied" "$tmp/q-q6_k-tied.gguf" 3e-2 3e-2 -- -t 2
check "llama Q4_K_M" "$tmp/l-q4_k_m.gguf" 3e-2 3e-2 -- -t 2
# the other kernel levels (each kernel of each level is also unit-tested against the scalar one)
for lvl in scalar avx2; do
    check "llama Q4_K_M, $lvl kernels" "$tmp/l-q4_k_m.gguf" 3e-2 3e-2 MFS_KERNELS=$lvl -- -t 2
done

# The same bytes at two paths print the same text; a bad file is refused with exit 1.
cp "$tmp/l-q4_k.gguf" "$tmp/copy.gguf"
a=$("$BIN/modelfs-run" -m "$tmp/l-q4_k.gguf" --tokens $PROMPT -n 16 --temp 0.7 --seed 42 -t 2 2>/dev/null)
b=$("$BIN/modelfs-run" -m "$tmp/copy.gguf" --tokens $PROMPT -n 16 --temp 0.7 --seed 42 -t 1 2>/dev/null)
if [ "$a" = "$b" ]; then echo "ok   same output from two paths (seeded sampling, 2 and 1 threads)"; else
    echo "FAIL two paths differ: '$a' vs '$b'"; fails=$((fails + 1)); fi

# Refusals: another architecture (named), a missing file (exit 1); bad usage (exit 2).
$PY - "$tmp/l-q4_0-tied.gguf" "$tmp/falcon.gguf" <<'PYEOF'
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
import mfsgguf as G
r = G.GGUFReader(sys.argv[1])
w = G.GGUFWriter(sys.argv[2], alignment=r.alignment)
for kv in r.kvs:
    w.add_kv(kv.key, kv.vtype, "falcon" if kv.key == "general.architecture" else kv.value)
for t in r.tensors:
    w.add_tensor(t.name, t.ggml_type, t.ne, (lambda t=t: r.tensor_bytes(t)))
w.write()
PYEOF
expect() { # expect RC PATTERN CMD...
    local want=$1 pat=$2 rc=0
    shift 2
    "$@" >/dev/null 2>"$tmp/err" || rc=$?
    if [ $rc -eq "$want" ] && grep -q -- "$pat" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -le 2 ]; then
        echo "ok   exit $rc: $(head -1 "$tmp/err")"
    else
        echo "FAIL expected exit $want and '$pat', got $rc: $(cat "$tmp/err")"
        fails=$((fails + 1))
    fi
}
expect 1 "architecture 'falcon' is not supported" "$BIN/modelfs-run" -m "$tmp/falcon.gguf" --tokens 1 -n 1
expect 1 "$tmp/none.gguf: No such file" "$BIN/modelfs-run" -m "$tmp/none.gguf" -n 1
expect 1 "out of range" "$BIN/modelfs-run" -m "$tmp/l-f32.gguf" --tokens 1,99999 -n 1
expect 2 "no model" "$BIN/modelfs-run" -n 1
expect 2 "not a token count" "$BIN/modelfs-run" -m "$tmp/l-f32.gguf" -n x
expect 2 "unknown option" "$BIN/modelfs-run" -m "$tmp/l-f32.gguf" --bogus

if [ $fails -ne 0 ]; then
    echo "test_infer_ref: $fails failed"
    exit 1
fi
echo "test_infer_ref: all passed"
