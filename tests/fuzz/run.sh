#!/bin/bash
# make fuzz: run each libFuzzer target for FUZZ_SECONDS on a copy of its corpus. Crashes are saved
# as tests/fuzz/regressions/NAME/crash-* (also leaks, timeouts, out-of-memory): commit them once
# fixed; `make test` replays them.
#   tests/fuzz/run.sh NAME...
# Environment:
#   FUZZ_SECONDS  per target (default 60)
#   FUZZ_KEEP     a directory that keeps each target's corpus between runs (DIR/NAME, seeded from
#                 the committed corpus) and appends one line per run to DIR/runs.tsv (name, seconds,
#                 executions, cov, ft, corpus files, result, commit): campaigns add up there.
#                 Without it, a scratch copy is used and thrown away.
#   MFS_BUILD     build directory (default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${MFS_BUILD:-build}"
secs="${FUZZ_SECONDS:-60}"
status=0
for name in "$@"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-fuzz-$name.XXXXXX")
    corpus="$work/corpus"
    if [ -n "${FUZZ_KEEP:-}" ]; then
        corpus="$FUZZ_KEEP/$name"
    fi
    mkdir -p "tests/fuzz/regressions/$name" "$corpus"
    cp -rn "tests/fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
    echo "== fuzz_$name for ${secs}s"
    result=ok
    # -timeout: an input that takes 25 s is a hang; -rss_limit_mb: the loader's caps (64 MiB GGUF
    # header, 100 MB safetensors header, bounded frames) keep any single input far below it.
    if ! "$build/fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 -timeout=25 \
        -rss_limit_mb=2048 -artifact_prefix="tests/fuzz/regressions/$name/" "$corpus" 2>"$work/log"; then
        status=1
        result=finding
        echo "fuzz_$name found a crash: see tests/fuzz/regressions/$name/"
        grep -E "^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" "$work/log" | head -5 || true
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    covft=$(grep -oE "cov: [0-9]+ ft: [0-9]+" "$work/log" | tail -1 || true)
    cov=$(awk '{ print $2 }' <<<"$covft")
    ft=$(awk '{ print $4 }' <<<"$covft")
    files=$(find "$corpus" -type f | wc -l)
    echo "executions ${execs:-?}, cov ${cov:-?}, ft ${ft:-?}, corpus $files files"
    if [ -n "${FUZZ_KEEP:-}" ]; then
        cp "$work/log" "$FUZZ_KEEP/$name.last.log"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$secs" "${execs:-0}" "${cov:-0}" "${ft:-0}" \
            "$files" "$result" "$(git rev-parse --short HEAD 2>/dev/null || echo -)" "$(date -u +%FT%TZ)" \
            >>"$FUZZ_KEEP/runs.tsv"
    fi
    rm -rf "$work"
done
exit $status
