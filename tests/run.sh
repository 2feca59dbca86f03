#!/bin/bash
# Run the test suite: cmocka unit binaries, then every tests/*.sh (tool tests, real FUSE mounts).
#   tests/run.sh [--unit] [NAME...]   NAME filters by substring
# Environment: MFS_BUILD (build dir, default build), MFS_BIN (tools, default bin),
# MFS_TEST_TIMEOUT (seconds per test, default 600).
set -u
cd "$(dirname "$0")/.."
export MFS_BUILD="${MFS_BUILD:-build}" MFS_BIN="${MFS_BIN:-bin}"
export MFS_SHARED_DATA="${MFS_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
timeout_s="${MFS_TEST_TIMEOUT:-600}"
unit_only=0
filters=()
for a in "$@"; do
    case "$a" in
    --unit) unit_only=1 ;;
    *) filters+=("$a") ;;
    esac
done

wanted() {
    [ ${#filters[@]} -eq 0 ] && return 0
    for f in "${filters[@]}"; do case "$1" in *"$f"*) return 0 ;; esac; done
    return 1
}

tests=()
for t in "$MFS_BUILD"/tests/test_*; do [ -x "$t" ] && wanted "$t" && tests+=("$t"); done
# fuzz corpora and regressions, replayed without libFuzzer
for t in "$MFS_BUILD"/fuzz-replay/*; do
    [ -x "$t" ] && wanted "$t" && tests+=("$t tests/fuzz/corpus/${t##*/} tests/fuzz/regressions/${t##*/}")
done
if [ $unit_only -eq 0 ]; then
    for t in tests/*.sh; do [ "$t" != tests/run.sh ] && [ -x "$t" ] && wanted "$t" && tests+=("$t"); done
fi

pass=0
failed=()
for t in "${tests[@]}"; do
    start=$EPOCHREALTIME
    log=$(mktemp)
    # shellcheck disable=SC2086 # a test may carry its arguments
    if timeout --kill-after=10 "$timeout_s" $t >"$log" 2>&1; then
        pass=$((pass + 1))
        printf 'PASS %-40s %6.1fs\n' "${t%% *}" "$(awk "BEGIN { print $EPOCHREALTIME - $start }")"
    else
        rc=$?
        failed+=("$t")
        printf 'FAIL %-40s (exit %d) output:\n' "${t%% *}" "$rc"
        tail -n 60 "$log" | sed 's/^/    /'
    fi
    rm -f "$log"
done
echo "$pass passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
