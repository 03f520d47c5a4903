#!/usr/bin/env bash
# bench-cluster.sh — Decrypt and durable-write throughput of release Keyhold servers in
# their own processes, loaded by `keyhold bench --endpoint`, in three set-ups: one node on
# SQLite, one node on PostgreSQL, three nodes on one PostgreSQL (each node loaded by its
# own `keyhold bench` with a third of the connections; the figures add up).
#   cargo build --release -p keyhold --bin keyhold && scripts/bench-cluster.sh
# Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and jq. Not run by CI.
# Environment: DURATION (seconds per measurement, default 6), CONNECTIONS (default 30),
# OPERATIONS (default "decrypt create-key put-secret-value put-parameter").
set -euo pipefail
T=${CARGO_TARGET_DIR:-$HOME/.cache/keyhold-target}/release
K=${K:-$T/keyhold}
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-30}
OPERATIONS=${OPERATIONS:-decrypt create-key put-secret-value put-parameter}
DB=keyhold_bench_$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1
# One root key for every node (the first to start writes it; the nodes start one by one).

start() { # name port storage node_id
  local dir="$WORK/$1"
  mkdir -p "$dir"
  {
    echo 'mode = "dev"'
    echo "data_dir = \"$dir/data\""
    echo "listen = \"127.0.0.1:$2\""
    [ "$3" = sqlite ] || echo "storage = \"$3\""
    [ -z "$4" ] || echo "node_id = \"$4\""
    echo '[seal]'
    echo 'kind = "key_file"'
    echo "path = \"$WORK/root.key\""
  } >"$dir/keyhold.toml"
  "$K" serve --config "$dir/keyhold.toml" >"$dir/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$2/health/ready" >/dev/null 2>&1 && return 0
    curl -s -o /dev/null "http://127.0.0.1:$2/" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "node $1 did not start:" >&2
  cat "$dir/log" >&2
  exit 1
}

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

# Runs `keyhold bench --operation $1` against each port given, all at once, and prints the
# summed requests/s and the worst p99.
measure() { # operation port...
  local op=$1
  shift
  local n=$# i=0
  local per=$((CONNECTIONS / n))
  for port in "$@"; do
    "$K" bench --endpoint "http://127.0.0.1:$port" --operation "$op" --connections "$per" \
      --duration "$DURATION" --warmup 1 --json >"$WORK/out.$i.json" &
    i=$((i + 1))
  done
  wait
  jq -s --arg op "$op" '
    [.[] | .operations[$op]] as $o
    | {rps: ([$o[].requests_per_second] | add), p99: ([$o[].latency_ms.p99 // $o[].p99 // 0] | max),
       errors: ([$o[].errors] | add)}' "$WORK"/out.*.json
  rm -f "$WORK"/out.*.json
}

report() { # setup op json
  printf '%-32s %-18s %10s req/s   p99 %6s ms   errors %s\n' "$1" "$2" \
    "$(jq -r .rps <<<"$3")" "$(jq -r .p99 <<<"$3")" "$(jq -r .errors <<<"$3")"
}

echo "keyhold bench --endpoint, $CONNECTIONS connections in all, ${DURATION}s each; $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

start sqlite 4601 sqlite ""
for op in $OPERATIONS; do report "1 node, SQLite" "$op" "$(measure "$op" 4601)"; done
stop_all

psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $DB"
PG="postgres://postgres@127.0.0.1:5432/$DB"
start pg1 4611 "$PG" ""
for op in $OPERATIONS; do report "1 node, PostgreSQL" "$op" "$(measure "$op" 4611)"; done
stop_all

psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
start a 4621 "$PG" a
start b 4622 "$PG" b
start c 4623 "$PG" c
for op in $OPERATIONS; do report "3 nodes, one PostgreSQL" "$op" "$(measure "$op" 4621 4622 4623)"; done
