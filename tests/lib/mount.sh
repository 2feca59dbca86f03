# Sourced by tests/test_mount_*.sh: a temp dir, daemons started in the foreground, and a cleanup
# that always unmounts (fusermount3 -u, then -uz) and kills what it started, even on failure.
# Every wait has a timeout. Needs root and /dev/fuse.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
MFS_BIN=$(abspath "${MFS_BIN:-bin}")
MFS_BUILD=$(abspath "${MFS_BUILD:-build}")
HELPERS=$MFS_BUILD/tests/helpers
PY=/usr/bin/python3
export PYTHONPATH="$ROOT/scripts:$ROOT/tests/lib${PYTHONPATH:+:$PYTHONPATH}"
T=$(mktemp -d "${TMPDIR:-/tmp}/mfs-test.XXXXXX")
MOUNTS=()
PIDS=()
TEST_NAME=$(basename "$0" .sh)

cleanup() {
    local rc=$?
    set +e
    for m in "${MOUNTS[@]}"; do
        if mountpoint -q "$m" 2>/dev/null; then
            timeout 10 fusermount3 -u "$m" 2>/dev/null || timeout 10 fusermount3 -uz "$m" 2>/dev/null
        fi
    done
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null
    done
    if [ $rc -ne 0 ] && [ -s "$T/daemon.log" ]; then
        echo "--- daemon log (last 40 lines)"
        tail -n 40 "$T/daemon.log"
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "FAIL $TEST_NAME: $*" >&2
    exit 1
}
ok() { echo "ok   $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (FUSE mounts)"
[ -c /dev/fuse ] || fail "needs /dev/fuse"
[ -x "$MFS_BIN/modelfs" ] || fail "no $MFS_BIN/modelfs (run make)"
[ -x "$HELPERS/mapread" ] || fail "no $HELPERS/mapread (run make test)"

# wait_until SECONDS COMMAND...: poll until COMMAND succeeds
wait_until() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    until "$@" 2>/dev/null; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.05
    done
}

# mount_fs SRC MNT [modelfs options...]: mount in the foreground (logging to $T/daemon.log);
# sets DAEMON_PID
mount_fs() {
    local src=$1 mnt=$2
    shift 2
    mkdir -p "$mnt"
    # background jobs of a script start with SIGINT ignored; give the daemon the default back
    env --default-signal=INT "$MFS_BIN/modelfs" -f "$@" "$src" "$mnt" >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    PIDS+=("$DAEMON_PID")
    MOUNTS+=("$mnt")
    wait_until 10 mountpoint -q "$mnt" || fail "mount of $src on $mnt did not appear"
}

# umount_fs MNT PID: unmount and wait for the daemon to exit 0
umount_fs() {
    local mnt=$1 pid=$2
    local err
    err=$(timeout 10 fusermount3 -u "$mnt" 2>&1) || fail "fusermount3 -u $mnt: $err"
    local rc=0
    timeout 10 tail --pid="$pid" -f /dev/null || fail "daemon $pid did not exit after unmount"
    wait "$pid" || rc=$?
    [ $rc -eq 0 ] || fail "daemon exited $rc after unmount"
}

alive() { kill -0 "$1" 2>/dev/null; }
# rss_within KB: the daemon's peak RSS (VmHWM, left in $HWM, kB) is at most KB. Always true in a
# sanitized build (MFS_SANITIZER set by make): ASan's quarantine and shadow memory are not ours.
rss_within() {
    HWM=$(awk '/VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")
    [ -n "${MFS_SANITIZER:-}" ] || [ "$HWM" -le "$1" ]
}

# stat_of MNT KEY: one counter from MNT/.modelfs/stats
stat_of() { timeout 10 awk -v k="$2" '$1 == k { print $2 }' "$1/.modelfs/stats"; }

sha() { timeout 120 sha256sum "$1" | cut -d' ' -f1; }

# gen NAME.gguf [gen-model.py options...]: a deterministic test model
gen() {
    local out=$1
    shift
    $PY "$ROOT/scripts/gen-model.py" --out "$out" "$@" >/dev/null
}

# zstd_frames IN OUT PIECE: concatenated single-frame zstd of PIECE-byte pieces (multi-frame,
# no seek table; each frame header holds its content size), with each frame's compressed size in
# OUT.frames (one per line)
zstd_frames() {
    local in=$1 out=$2 piece=$3 i=0
    : >"$out"
    : >"$out.frames"
    local size
    size=$(stat -c %s "$in")
    while [ $((i * piece)) -lt "$size" ]; do
        dd if="$in" of="$T/piece" bs="$piece" skip=$i count=1 status=none
        zstd -q -f -3 "$T/piece" -o "$T/piece.zst"
        stat -c %s "$T/piece.zst" >>"$out.frames"
        cat "$T/piece.zst" >>"$out"
        i=$((i + 1))
    done
    rm -f "$T/piece" "$T/piece.zst"
}
