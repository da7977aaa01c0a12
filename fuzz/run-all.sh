#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 600) one after the other, on the seeded
# corpora (./seed.sh), with a 2 GiB memory limit and a 10 s per-input time limit; each
# target's last status line goes to fuzz-<target>.log. Needs nightly and cargo-fuzz.
set -uo pipefail
cd "$(dirname "$0")"
seconds="${SECONDS_PER_TARGET:-600}"
[ -d corpus ] || ./seed.sh
for target in ${TARGETS:-blob dataset image onnx rundir}; do
    # A run directory's files are larger: a cnn resume.state is about 300 KB.
    max_len=131072
    [ "$target" = rundir ] && max_len=524288
    cargo +nightly fuzz run -O "$target" corpus/"$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$max_len" \
        -print_final_stats=1 > "fuzz-$target.log" 2>&1
    echo "$target: exit $?; $(grep -E '^(#[0-9]+|Done)' "fuzz-$target.log" | tail -1)"
done
