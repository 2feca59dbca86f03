# Shared by the scripts/bench-* benchmarks (sourced, not run).
# MFS_BENCH_DIR: where generated models are kept between runs (default /var/tmp/modelfs-bench).
# MFS_BENCH_REPEAT: runs per measurement; the best (fastest) is reported (default 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MFS_BIN="${MFS_BIN:-bin}"
MFS_BUILD="${MFS_BUILD:-build}"
BENCH_DIR="${MFS_BENCH_DIR:-/var/tmp/modelfs-bench}"
REPEAT="${MFS_BENCH_REPEAT:-3}"
mkdir -p "$BENCH_DIR" docs/results

# The TinyLlama-shaped model of the issues (dim 2048, 22 layers, 32 heads, 4 KV heads, ffn 5632,
# vocab 32000), generated once per type: bench_model TYPE -> prints its path.
# MFS_BENCH_SMALL=1: a small model of the same kind instead, to check the scripts quickly.
bench_model() {
    local type=$1 out="$BENCH_DIR/tinyllama-$1.gguf" shape="--dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632"
    if [ -n "${MFS_BENCH_SMALL:-}" ]; then
        out="$BENCH_DIR/small-$1.gguf"
        shape="--dim 512 --layers 4 --heads 8 --kv-heads 4 --ffn 1408"
    fi
    if [ ! -s "$out" ]; then
        echo "generating $out" >&2
        # shellcheck disable=SC2086
        /usr/bin/python3 scripts/gen-model.py --out "$out.tmp" --type "$type" $shape --seed 1 >&2
        mv "$out.tmp" "$out"
    fi
    echo "$out"
}

# Seconds of the fastest of REPEAT runs of a command (its output discarded).
best_time() {
    local best="" t0 t
    for _ in $(seq "$REPEAT"); do
        t0=$EPOCHREALTIME
        "$@" >/dev/null
        t=$(awk "BEGIN { print $EPOCHREALTIME - $t0 }")
        best=$(awk -v a="$best" -v b="$t" 'BEGIN { print (a == "" || b < a) ? b : a }')
    done
    echo "$best"
}

# Put a file in the page cache.
warm() { cat "$@" >/dev/null; }

# Drop a file from the page cache (needs root; a no-op otherwise).
cold() { for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true; done; sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

machine() {
    echo "$(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), $(date -u +%Y-%m-%d)"
}
