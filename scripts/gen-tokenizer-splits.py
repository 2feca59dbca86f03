#!/usr/bin/env python3
"""Golden word splits for the BPE pre-tokenizers, from the regexes themselves.

    scripts/gen-tokenizer-splits.py > tests/data/tokenizer-splits.txt

infer/tokenizer.c splits text by hand-written code; this runs the regexes llama.cpp (Feb 2025,
src/llama-vocab.cpp) lists for each `tokenizer.ggml.pre` through Python's `re` (a backtracking
engine like the std::regex and Oniguruma ones llama.cpp and Hugging Face use), with \\p{L}, \\p{N},
\\p{P} and \\s spelled out as explicit classes from the same Unicode data as
scripts/gen-unicode-tables.py, over fixed and pseudo-random texts. Like llama.cpp, the regexes of
one pre type apply in turn, each inside the words of the previous one, and the text between
matches is a word too.

Output, one line per (pre type, text): PRE <tab> text as hex <tab> word end offsets in bytes.
"""
import random
import re
import sys
import unicodedata
import warnings

# re warns that a '[' inside the spelled-out classes may mean a nested set in some future Python;
# today it is a literal, which is what is meant.
warnings.simplefilter("ignore", FutureWarning)

WHITE_SPACE = list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + [
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000]


def char_class(pred):
    """The code points where pred holds, as the inside of a [...] class."""
    out, start = [], None
    for c in range(0x110000):
        if pred(c):
            if start is None:
                start = c
        elif start is not None:
            out.append((start, c - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return "".join(re.escape(chr(a)) if a == b else re.escape(chr(a)) + "-" + re.escape(chr(b)) for a, b in out)


CAT = [unicodedata.category(chr(c)) for c in range(0x110000)]
L = char_class(lambda c: CAT[c][0] == "L")
N = char_class(lambda c: CAT[c][0] == "N")
P = char_class(lambda c: CAT[c][0] == "P")
S = "".join(re.escape(chr(c)) for c in WHITE_SPACE)


def compile_rx(rx):
    """Spell the Unicode classes out (Python's re has no \\p{..}; its \\s differs)."""
    for a, b in [
        (r"[^\s\p{L}\p{N}]", "[^" + S + L + N + "]"),
        (r"[^\r\n\p{L}\p{N}]", r"[^\r\n" + L + N + "]"),
        (r"[\p{P}\$\+<=>\^~\|]", "[" + P + r"\$\+<=>\^~\|]"),
        (r"[\p{P}\$\+<=>\^~\|`]", "[" + P + r"\$\+<=>\^~\|`]"),
        (r"[\p{L}]", "[" + L + "]"),
        (r"\p{L}", "[" + L + "]"),
        (r"\p{N}", "[" + N + "]"),
        (r"\S", "[^" + S + "]"),
        (r"\s", "[" + S + "]"),
    ]:
        rx = rx.replace(a, b)
    return re.compile(rx)


GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# tekken as llama.cpp adapts it: (?=[\p{L}])[^a-z] is "a letter but a-z"
TEKKEN = (r"[^\r\n\p{L}\p{N}]?(?:(?=[\p{L}])[^a-z])*(?:(?=[\p{L}])[^A-Z])+|"
          r"[^\r\n\p{L}\p{N}]?(?:(?=[\p{L}])[^a-z])+(?:(?=[\p{L}])[^A-Z])*|"
          r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TYPES = {
    "gpt-2": [GPT2],
    "llama-bpe": [LLAMA3],
    "qwen2": [QWEN2],
    "tekken": [TEKKEN],
    "smollm": [r"\p{N}", GPT2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
}


def split(text, regexes):
    words = [len(text)]  # lengths in code points
    for rx in regexes:
        c, out, start = compile_rx(rx), [], 0
        for n in words:
            sub, pos = text[start:start + n], 0
            for m in c.finditer(sub):
                if m.start() > pos:
                    out.append(m.start() - pos)
                if m.end() > m.start():
                    out.append(m.end() - m.start())
                pos = m.end()
            if pos < n:
                out.append(n - pos)
            start += n
        words = out
    ends, b, i = [], 0, 0
    for n in words:
        b += len(text[i:i + n].encode())
        i += n
        ends.append(b)
    return ends


POOL = (list("abcxyzABCXYZ") + list("0123456789") + [" "] * 8 + list("\t\n\r") +
        list(".,!?;:'\"-_/\\()[]{}$+<=>^~|`@#%&*") +
        ["'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'LL", "'d", "'D"] +
        list("ÀéßøЖжЯяΩω中文字日本語한국") + list("٣٤½Ⅻ²") +
        ["\u0301", "\u0308", "\u00a0", "\u3000", "\u2003", "\u0085", "\u200b", "€", "😀", "🦙", "\u2028"] +
        ["HTTP", "Server", "camelCase", "URLs", "aB", "Ab"])
FIXED = [
    "", " ", "  ", "\n", "\n\n\n", "\t\n", "Hello world", " Hello World!", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "   Hello\n    Hello", "\n =", "' era", "3333333", "w048 7tuijk dsdfhu", "нещо на Български",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅", "helloWorld HTTPServer ABC", "a//b\n/c",
    "DON'T we'Ve it'S 'll", "x+=1234567,y", "a`b 12345", "trailing space ", "  two\t\ttabs  ",
]


def main():
    rng = random.Random(20250220)
    texts = FIXED + ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 24))) for _ in range(120)]
    lines = []
    for pre, regexes in PRE_TYPES.items():
        for t in texts:
            lines.append("%s\t%s\t%s" % (pre, t.encode().hex(), " ".join(map(str, split(t, regexes)))))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
