#!/bin/bash
# The demo model (examples/, docs/demo-model.md) through a real mount: the presented GGUF has the
# sha256 recorded in examples/SHA256SUMS, and modelfs-run's greedy text for a fixed prompt is the
# golden one (tests/data/kjv-demo.golden), at every kernel level this CPU has, through the mount
# and from the unpacked file alike (golden-output test, as llama2.c's test_all.py).
# To regenerate the golden file after retraining the model:
#   bin/modelfs-run -m MOUNT/kjv-demo.gguf -p "In the beginning" -n 160 --temp 0 -t 1 2>/dev/null \
#       > tests/data/kjv-demo.golden
source "$(dirname "$0")/lib/mount.sh"

NAME=kjv-demo
PROMPT="In the beginning"
GOLDEN=$ROOT/tests/data/$NAME.golden
M=$T/mnt
[ -f "$ROOT/examples/$NAME.mfz" ] || fail "no examples/$NAME.mfz"
[ -f "$GOLDEN" ] || fail "no $GOLDEN"

mount_fs "$ROOT/examples" "$M"
[ -f "$M/$NAME.gguf" ] || fail "$NAME.gguf is not in the mount: $(ls "$M" | tr '\n' ' ')"
(cd "$M" && timeout 60 sha256sum --quiet -c SHA256SUMS) || fail "sha256 of the mounted $NAME.gguf differs from examples/SHA256SUMS"
ok "$NAME.gguf through the mount: sha256 as in examples/SHA256SUMS"

gen_text() { # FILE [env...]: greedy text for the prompt
    local f=$1
    shift
    env "$@" timeout 60 "$MFS_BIN/modelfs-run" -m "$f" -p "$PROMPT" -n 160 --temp 0 -t 2 2>"$T/run.err" ||
        fail "modelfs-run on $f: $(tail -n 2 "$T/run.err")"
}
for level in avx512 avx2 scalar; do
    gen_text "$M/$NAME.gguf" MFS_KERNELS=$level >"$T/out.$level"
    cmp -s "$T/out.$level" "$GOLDEN" || fail "MFS_KERNELS=$level: the text differs from $GOLDEN:
$(diff <(fold -w 100 "$GOLDEN") <(fold -w 100 "$T/out.$level") | head -n 8)"
done
ok "greedy text through the mount is the golden one at every kernel level: $(head -c 70 "$GOLDEN" | tr '\n' ' ')..."

# the same from the unpacked file, and the prompt's tokens as the model was trained on
timeout 60 cat "$M/$NAME.gguf" >"$T/$NAME.gguf"
umount_fs "$M" "$DAEMON_PID"
gen_text "$T/$NAME.gguf" >"$T/out.file"
cmp -s "$T/out.file" "$GOLDEN" || fail "the unpacked file gives another text"
timeout 60 "$MFS_BIN/modelfs-run" -m "$T/$NAME.gguf" -p "$PROMPT" -n 0 --dump-tokens "$T/tokens" >/dev/null 2>&1 ||
    fail "--dump-tokens"
# <s>, then " In the beginning" with every space as U+2581 (e2 96 81), each byte as <0xNN> = byte + 3
want=$(printf ' %s' "$PROMPT" | sed 's/ /\xe2\x96\x81/g' | od -An -v -tu1 | tr -s ' \n' '\n' | sed '/^$/d' |
    awk 'BEGIN { print 1 } { print $1 + 3 }')
[ "$(cat "$T/tokens")" = "$want" ] || fail "prompt tokens $(tr '\n' ' ' <"$T/tokens"), want $(tr '\n' ' ' <<<"$want")"
ok "unpacked file: the same text; the prompt is <s> + bytes of ' In the beginning' with ▁ for spaces"
