#!/bin/bash
# make fuzz: run each libFuzzer target for FUZZ_SECONDS on a scratch copy of its corpus, then keep
# any new input that libFuzzer minimized into the committed corpus only by hand (see
# docs/RELIABILITY.md). Crashes are saved as tests/fuzz/regressions/NAME/crash-*: commit them
# once fixed; `make test` replays them.
#   tests/fuzz/run.sh NAME...      (FUZZ_SECONDS, default 60; MFS_BUILD, default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${MFS_BUILD:-build}"
secs="${FUZZ_SECONDS:-60}"
status=0
for name in "$@"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-fuzz-$name.XXXXXX")
    mkdir -p "tests/fuzz/regressions/$name" "$work/corpus"
    cp -r "tests/fuzz/corpus/$name/." "$work/corpus/" 2>/dev/null || true
    echo "== fuzz_$name for ${secs}s"
    if ! "$build/fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="tests/fuzz/regressions/$name/" "$work/corpus" 2>"$work/log"; then
        status=1
        echo "fuzz_$name found a crash: see tests/fuzz/regressions/$name/"
    fi
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)" "$work/log" || tail -5 "$work/log"
    grep -oE "cov: [0-9]+ ft: [0-9]+" "$work/log" | tail -1
    rm -rf "$work"
done
exit $status
