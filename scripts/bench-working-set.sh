#!/usr/bin/env bash
# Decrypt throughput over a working set of N keys (docs/performance.md, "Caches and memory"):
# starts a dev-mode `keyhold serve` from a config file (optionally with `[cache] kms_keys`),
# runs the `decrypt_working_set` example against it, and prints the server's RSS. The example
# prints the server's CPU time per Decrypt over the window too (server_cpu_us).
#
#   cargo build --release -p keyhold -p keyhold-server --bins --example decrypt_working_set
#   scripts/bench-working-set.sh 100000          # keys; the default cache bound
#   scripts/bench-working-set.sh 100000 10000    # keys, [cache] kms_keys
#   SETTLE=30 scripts/bench-working-set.sh 100000 # wait 30 s after creating the keys (the
#                                                 # audit index catches up) before measuring
set -euo pipefail
keys=${1:-10}
cache=${2:-}
target=${CARGO_TARGET_DIR:-target}
bin=${KEYHOLD_BIN:-$target/release/keyhold}
example=${EXAMPLE_BIN:-$target/release/examples/decrypt_working_set}
port=${PORT:-4599}
dir=$(mktemp -d)
{
  echo 'mode = "dev"'
  echo "listen = \"127.0.0.1:$port\""
  echo "data_dir = \"$dir/data\""
  if [ -n "$cache" ]; then printf '[cache]\nkms_keys = %s\n' "$cache"; fi
} > "$dir/keyhold.toml"
"$bin" serve --config "$dir/keyhold.toml" > "$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "idle RSS: $(grep VmRSS /proc/$pid/status)"
"$example" --endpoint "127.0.0.1:$port" --keys "$keys" --connections "${CONNECTIONS:-32}" --seconds "${SECONDS_MEASURED:-8}" --settle "${SETTLE:-0}" --server-pid "$pid"
echo "RSS after: $(grep VmRSS /proc/$pid/status)"
