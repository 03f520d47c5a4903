#!/usr/bin/env bash
# fuzz.sh TARGET [SECONDS] [libFuzzer flags...] — one fuzz target for longer (default 600 s).
#
# Starts from the committed seeds (fuzz/corpus/TARGET) plus what earlier long runs found
# (fuzz/corpus-local/TARGET, not committed), and adds new inputs to the latter. A crash
# stops the run with its input in fuzz/artifacts/TARGET/; replay it with
#   cd fuzz && cargo fuzz run -s none TARGET artifacts/TARGET/crash-...
# and minimize it with `cargo fuzz tmin -s none TARGET artifacts/TARGET/crash-...`.
# Targets: `cd fuzz && cargo fuzz list`. See docs/fuzzing.md.
set -euo pipefail
if [ "$#" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]" >&2
    exit 2
fi
target=$1
seconds=${2:-600}
shift $(($# < 2 ? $# : 2))
cd "$(dirname "$0")/../fuzz"
export CARGO_TARGET_DIR=${KEYHOLD_FUZZ_TARGET_DIR:-$HOME/.cache/keyhold-fuzz-target}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
mkdir -p "corpus-local/$target" "artifacts/$target"
dict=()
if [ -f "dict/$target.dict" ]; then
    dict=(-dict="dict/$target.dict")
fi
exec cargo fuzz run -s none "$target" "corpus-local/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" "${dict[@]}" "$@"
