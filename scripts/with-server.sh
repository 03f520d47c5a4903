#!/usr/bin/env bash
# with-server.sh CMD [ARGS...] — start a dev-mode Keyhold on a free port with a fresh data
# directory, run CMD with ENDPOINT=http://127.0.0.1:PORT, stop the server, exit with CMD's
# status. KEYHOLD_BIN selects the binary (default: the debug build in CARGO_TARGET_DIR).
set -euo pipefail

target_dir="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
bin="${KEYHOLD_BIN:-$target_dir/debug/keyhold}"
[ -x "$bin" ] || { echo "with-server: no keyhold binary at $bin (cargo build -p keyhold)" >&2; exit 2; }

data_dir="$(mktemp -d "${TMPDIR:-/tmp}/keyhold-scenario.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$data_dir.log"

"$bin" serve --data-dir "$data_dir" --listen "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/_keyhold/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "with-server: keyhold exited:" >&2; cat "$log" >&2; exit 2; fi
  sleep 0.1
done

set +e
ENDPOINT="http://127.0.0.1:$port" "$@"
status=$?
set -e
if [ "$status" != 0 ]; then
  echo "with-server: '$*' failed ($status); server log:" >&2
  tail -n 50 "$log" >&2
fi
rm -f "$log"
exit "$status"
