#!/usr/bin/env bash
# fuzz-ci.sh — every fuzz target in fuzz/ for a bounded time; fails on a crash.
#
# Builds the targets with cargo-fuzz on the stable toolchain (`-s none`: coverage-guided
# libFuzzer, no sanitizer, which would need nightly), installing cargo-fuzz from crates.io
# if it is missing, then runs each one from its committed seed corpus for FUZZ_SECONDS
# (default 8) seconds. New inputs go to a scratch directory: the committed corpus is read,
# never written. A crash leaves its input in fuzz/artifacts/<target>/ and makes the script
# exit 1 after the remaining targets ran. See docs/fuzzing.md.
#   scripts/fuzz-ci.sh              # all targets
#   FUZZ_SECONDS=30 scripts/fuzz-ci.sh policy sigv4
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${KEYHOLD_FUZZ_TARGET_DIR:-$HOME/.cache/keyhold-fuzz-target}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-8}
FLAGS=(-s none)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-ci: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

cd fuzz
start=$(date +%s)
cargo fuzz build "${FLAGS[@]}"
echo "fuzz-ci: built in $(($(date +%s) - start)) s"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    log="$scratch/$target.log"
    dict=()
    if [ -f "dict/$target.dict" ]; then
        dict=(-dict="dict/$target.dict")
    fi
    echo "fuzz-ci: $target for ${SECONDS_PER_TARGET}s"
    if cargo fuzz run "${FLAGS[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" "${dict[@]}" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "fuzz-ci: $target ok, ${execs:-?} executions"
    else
        echo "fuzz-ci: $target FAILED; its output:"
        tail -n 60 "$log"
        failed+=("$target")
    fi
done

echo "fuzz-ci: total $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-ci: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz-ci: ${#targets[@]} passed, 0 failed"
