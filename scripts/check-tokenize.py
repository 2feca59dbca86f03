#!/usr/bin/python3
"""check-tokenize.py: does llama.cpp tokenize with MODEL as the reference test suite says?

    scripts/check-tokenize.py LLAMA_BIN MODEL.gguf VOCAB.gguf.inp VOCAB.gguf.out

The .inp/.out pair is llama.cpp's tokenizer test format (inputs separated by lines
`__ggml_vocab_test__`, expected ids one line per input, no BOS), as in ../shared/data.
Runs LLAMA_BIN/llama-tokenize on each input; prints the count and the first mismatches;
exits 1 if any differs.
"""
import os
import subprocess
import sys


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    bindir, model, inp, outp = argv
    with open(inp, encoding="utf-8") as f:
        tests = f.read().split("\n__ggml_vocab_test__\n")
    with open(outp, encoding="utf-8") as f:
        outs = f.read().split("\n")
    env = dict(os.environ, LD_LIBRARY_PATH=bindir)
    ok = bad = 0
    for i, text in enumerate(tests[:len(outs)]):
        if i == len(tests) - 1 and text == "":
            break
        r = subprocess.run([os.path.join(bindir, "llama-tokenize"), "-m", model, "--stdin", "--ids", "--no-bos",
                            "--log-disable", "--no-parse-special"], input=text.encode(), capture_output=True, env=env)
        got = r.stdout.decode().strip().strip("[]").replace(",", " ").split()
        if r.returncode == 0 and got == outs[i].split():
            ok += 1
            continue
        bad += 1
        if bad <= 3:
            print("mismatch on %r: %s, expected %s" % (text[:40], got[:8], outs[i].split()[:8]))
    print("%s: %d of %d inputs tokenized as expected" % (model, ok, ok + bad))
    return 1 if bad or not ok else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
