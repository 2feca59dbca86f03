#!/bin/bash
# make demo: the whole story in a minute. Mounts examples/ (a small Llama we trained on the King
# James Bible, stored compressed), looks at the mounted GGUF with ls, hexdump and cat, generates
# text through the mount with modelfs-run twice, compares the two load times, and unmounts, also
# on Ctrl-C. Needs /dev/fuse (and root or a user allowed to mount FUSE filesystems).
#   scripts/demo.sh            (make demo builds first; MFS_BIN=DIR picks the tools)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MFS_BIN:-bin}"
NAME=kjv-demo                       # examples/kjv-demo.mfz, shown as kjv-demo.gguf
PROMPT="In the beginning"
N=200                               # bytes to generate (the vocabulary is bytes)
SAMPLE="--temp 0.7 --top-p 0.9 --seed 3"  # sampled (greedy repeats itself); the seed makes both runs alike

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n'; bold "== $*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }   # the command, then its output
die() { echo "demo: $*" >&2; exit 1; }

scripts/install-deps.sh || die "scripts/install-deps.sh failed: install the packages it names"
for t in modelfs modelfs-run modelfs-inspect; do
    [ -x "$BIN/$t" ] || die "$BIN/$t is missing: run make first (or make demo)"
done
[ -f "examples/$NAME.mfz" ] || die "examples/$NAME.mfz is missing (is this a full clone?)"
[ -c /dev/fuse ] || die "/dev/fuse is missing: FUSE is not available here (modprobe fuse?)"
command -v fusermount3 >/dev/null || die "fusermount3 is missing: apt-get install fuse3"

work=$(mktemp -d "${TMPDIR:-/tmp}/modelfs-demo.XXXXXX")
mnt=$work/mnt
mkdir "$mnt"
daemon=
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    if mountpoint -q "$mnt" 2>/dev/null; then
        timeout 10 fusermount3 -u "$mnt" 2>/dev/null || timeout 10 fusermount3 -uz "$mnt" 2>/dev/null
        [ $rc -eq 0 ] || echo "demo: unmounted $mnt" >&2
    fi
    if [ -n "$daemon" ]; then
        timeout 10 tail --pid="$daemon" -f /dev/null 2>/dev/null || kill "$daemon" 2>/dev/null
    fi
    if [ $rc -ne 0 ] && [ -s "$work/modelfs.log" ]; then
        echo "--- modelfs log" >&2
        tail -n 20 "$work/modelfs.log" >&2
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
# -f keeps the daemon in the foreground, so the demo knows its pid; its log goes to a file.
# A background job of a script starts with SIGINT ignored: give the daemon the default back.
mount_examples() {
    env --default-signal=INT "$BIN/modelfs" -f examples "$mnt" >>"$work/modelfs.log" 2>&1 &
    daemon=$!
    for _ in $(seq 100); do
        mountpoint -q "$mnt" && break
        kill -0 "$daemon" 2>/dev/null || die "modelfs exited: $(tail -n 3 "$work/modelfs.log")"
        sleep 0.05
    done
    mountpoint -q "$mnt" || die "the mount did not appear"
}
umount_examples() {
    fusermount3 -u "$mnt"
    timeout 10 tail --pid="$daemon" -f /dev/null || die "modelfs did not exit after unmounting"
    wait "$daemon" || die "modelfs exited with an error"
    daemon=
}
stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$mnt/.modelfs/stats"; }
load_ms() { sed -n 's/^modelfs-run: load time = \([0-9.]*\) ms$/\1/p' "$1"; }

step "The source directory: a compressed model (modelfs-pack's tensor-aware container)"
show "ls -l examples/"
ls -l examples/
show "$BIN/modelfs-inspect examples/$NAME.mfz | head -n 8"
"$BIN/modelfs-inspect" "examples/$NAME.mfz" | sed -n '1,8p'

step "Mount it (read-only; the daemon decodes pages when they are first read)"
show "$BIN/modelfs -f examples $mnt &"
mount_examples
show "ls -l $mnt"
ls -l "$mnt"

step "Every tensor is a file of its own, with its type and shape as extended attributes"
show "ls $mnt/$NAME.tensors | head"
ls "$mnt/$NAME.tensors" | head || true # (ls may get SIGPIPE)
tensor=blk.0.attn_q.weight
show "getfattr -d $mnt/$NAME.tensors/$tensor"
getfattr -d "$mnt/$NAME.tensors/$tensor" 2>/dev/null | sed '/^$/d' || true
show "hexdump -C -n 64 $mnt/$NAME.tensors/$tensor"
hexdump -C -n 64 "$mnt/$NAME.tensors/$tensor"

step "The metadata, as text"
show "head -n 24 $mnt/$NAME.meta"
head -n 24 "$mnt/$NAME.meta"

step "Generate text through the mount, twice"
echo "First the mount starts afresh, as after a reboot: nothing decoded, nothing in the page cache."
show "fusermount3 -u $mnt; $BIN/modelfs -f examples $mnt &"
umount_examples
mount_examples
echo "modelfs-run maps $NAME.gguf; --populate (MAP_POPULATE) makes its load time include"
echo "bringing in every page of the model, so the load time is the cost of getting the weights."
echo "(The runner echoes the prompt as the model sees it: SentencePiece writes its spaces as ▁.)"
run() {
    # shellcheck disable=SC2086
    "$BIN/modelfs-run" -m "$mnt/$NAME.gguf" -p "$PROMPT" -n "$N" $SAMPLE --populate 2>"$work/run$1.err" \
        || { cat "$work/run$1.err" >&2; die "modelfs-run failed"; }
}
r0=$(stat_of read_requests)
show "$BIN/modelfs-run -m $mnt/$NAME.gguf -p \"$PROMPT\" -n $N $SAMPLE --populate"
run 1
r1=$(stat_of read_requests)
d1=$(stat_of bytes_decoded)
grep -E 'load time|eval time' "$work/run1.err" | sed 's/^/  /'
show "$BIN/modelfs-run -m $mnt/$NAME.gguf -p \"$PROMPT\" -n $N $SAMPLE --populate   # again"
run 2
r2=$(stat_of read_requests)
grep -E 'load time' "$work/run2.err" | sed 's/^/  /'

t1=$(load_ms "$work/run1.err")
t2=$(load_ms "$work/run2.err")
[ -n "$t1" ] && [ -n "$t2" ] || die "no load time line from modelfs-run"
step "Load times"
awk -v t1="$t1" -v t2="$t2" -v r="$((r1 - r0))" -v d="$d1" -v r2="$((r2 - r1))" 'BEGIN {
    printf "  %-46s %10s   %s\n", "", "load time", "requests to the daemon"
    printf "  %-46s %7.1f ms   %d reads, %.1f MiB decoded\n", "first run (cold: the daemon decodes every page)", t1, r, d / 1048576
    printf "  %-46s %7.1f ms   %d reads\n", "second run (warm: the kernel page cache)", t2, r2
    printf "  the second start is %.0fx faster\n", t1 / (t2 > 0 ? t2 : 0.01)
}'

step "Unmount"
show "fusermount3 -u $mnt"
umount_examples
echo "done"
