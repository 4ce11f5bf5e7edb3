#!/bin/sh
# run_libfuzzer.sh SRC OUT: builds every libFuzzer target with clang
# (TM_FUZZ=ON: the library instrumented for coverage, ASan and UBSan) in the
# build tree OUT, then runs each for TM_FUZZ_SECONDS (default 30) seconds on
# a scratch copy of its committed corpus. Any crash, leak, sanitizer report or
# timeout fails the run; the input that did it is written to OUT/artifacts/.
# New inputs stay in OUT/corpus/<target>/: merge the useful ones by hand
# (tests/fuzz/README.md).
set -eu
src=$1
out=$2
secs=${TM_FUZZ_SECONDS:-30}
targets="fuzz_jwt fuzz_sdp fuzz_rtp_rtcp fuzz_http_range fuzz_rec_reader fuzz_media_datagram fuzz_signaling fuzz_http fuzz_recorder"

CC=clang cmake -S "$src" -B "$out" -DTM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$out.cmake.log" 2>&1 ||
    { cat "$out.cmake.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$out" -j2 --target $targets
mkdir -p "$out/artifacts"
status=0
for t in $targets; do
    name=${t#fuzz_}
    seeds=$src/tests/fuzz/corpus/$name
    [ "$t" = fuzz_sdp ] && seeds=$src/tests/media/data
    work=$out/corpus/$name
    mkdir -p "$work"
    echo "== $t: ${secs}s from $seeds"
    if ! "$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" "$work" "$seeds" \
        >"$out/$t.log" 2>&1; then
        status=1
        echo "!! $t failed:"
        tail -40 "$out/$t.log"
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|cov: ' "$out/$t.log" | tail -3
done
exit $status
