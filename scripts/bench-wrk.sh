#!/usr/bin/env bash
# bench-wrk.sh — requests/s from a second process (wrk: 1 thread, 32 keep-alive connections,
# the same SigV4-signed request replayed, 8 s) against a release Keyhold in dev mode with the
# durable audit trail, beside the bare HTTP stack (examples/bare_axum.rs) in the same run.
#   cargo build --release -p keyhold --bin keyhold -p keyhold-server --example bare_axum && scripts/bench-wrk.sh
# Needs wrk (apt-get install wrk), the aws CLI and botocore (pip install awscli).
#
# Under each Keyhold line: the server's CPU per request by thread (request workers, audit
# writer, indexer, room helper; from /proc), the CPUs' idle share during the run, and the
# audit batches written (mean events, mean commit, share slower than 3.2 ms).
#   KEYHOLD_ARGS="--config F"  extra `keyhold serve` arguments (an A/B of a setting)
#   OPS="decrypt gsv"          which of decrypt, gsv, gp to run (default: all three)
#   PERF_DIR=DIR               also record a call-graph profile of the server per operation
#                              (perf record -g; build with RUSTFLAGS="-C force-frame-pointers=yes"
#                              for useful stacks), summed by scripts/perf-inclusive.py
set -euo pipefail
T=${CARGO_TARGET_DIR:-$HOME/.cache/keyhold-target}/release
K=${K:-$T/keyhold}
BARE=${BARE:-$T/examples/bare_axum}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
declare -A NAMES=(
  [decrypt]="KMS Decrypt (durable audit)"
  [gsv]="Secrets Manager GetSecretValue"
  [gp]="SSM GetParameter (SecureString)"
)
OPS=${OPS:-decrypt gsv gp}
for op in $OPS; do
  [ -v "NAMES[$op]" ] || { echo "unknown operation $op (decrypt, gsv, gp)" >&2; exit 2; }
done
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
PORT=4596
METRICS=4598
# shellcheck disable=SC2086 # KEYHOLD_ARGS is split on purpose
"$K" serve --data-dir "$WORK/data" --listen 127.0.0.1:$PORT --metrics-listen 127.0.0.1:$METRICS \
  ${KEYHOLD_ARGS:-} >"$WORK/keyhold.log" 2>&1 &
KEYHOLD_PID=$!
PIDS+=($KEYHOLD_PID)
"$BARE" 127.0.0.1:4597 >/dev/null 2>&1 &
PIDS+=($!)
sleep 1
export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
KEY=$(aws kms create-key --query KeyMetadata.KeyId --output text)
BLOB=$(aws kms encrypt --key-id "$KEY" --plaintext "$(printf 'wrk benchmark plaintext' | base64)" --query CiphertextBlob --output text)
SECRET_ARN=$(aws secretsmanager create-secret --name wrk --secret-string 'a secret value' --query ARN --output text)
aws ssm put-parameter --name /wrk/p --type SecureString --value 'a parameter value' >/dev/null

# One signed request per operation, written as a wrk Lua script that replays it.
sign() { # target body service lua-file
  python3 - "$1" "$2" "$3" "$4" "$PORT" <<'PY'
import sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
target, body, service, out, port = sys.argv[1:]
req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body.encode(),
                 headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
SigV4Auth(Credentials("111122223333", "dev"), service, "us-east-1").add_auth(req)
def lua(s): return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
with open(out, "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write(f"wrk.body = {lua(body)}\n")
    for k, v in req.headers.items():
        f.write(f"wrk.headers[{lua(k)}] = {lua(v)}\n")
PY
}
sign TrentService.Decrypt "{\"CiphertextBlob\":\"$BLOB\"}" kms "$WORK/decrypt.lua"
sign secretsmanager.GetSecretValue "{\"SecretId\":\"$SECRET_ARN\"}" secretsmanager "$WORK/gsv.lua"
sign AmazonSSM.GetParameter '{"Name":"/wrk/p","WithDecryption":true}' ssm "$WORK/gp.lua"

# A snapshot of server $1 for `report`: CPU ticks by thread name, the CPUs' total and idle
# ticks, and the audit batches so far (metrics: count, events, commit seconds, commits
# within 3.2 ms).
snapshot() {
  python3 - "$1" <<'PY'
import os, sys
pid = sys.argv[1]
ticks = {}
for task in os.listdir(f"/proc/{pid}/task"):
    try:
        stat = open(f"/proc/{pid}/task/{task}/stat").read()
    except OSError:
        continue
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])  # utime, stime
cpu = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
print("threads", " ".join(f"{n.replace(' ', '_')}={t}" for n, t in ticks.items()))
print("cpus", sum(cpu), cpu[3])
PY
  curl -s "http://127.0.0.1:$METRICS/metrics" | awk '
    /^keyhold_audit_batch_events_sum/ {e = $2} /^keyhold_audit_batch_events_count/ {n = $2}
    /^keyhold_audit_commit_seconds_sum/ {c = $2}
    /^keyhold_audit_commit_seconds_bucket\{le="0.0032"\}/ {fast = $2}
    END {print "batches", n + 0, e + 0, c + 0, fast + 0}'
}

# Prints what changed between two snapshots over `requests` requests.
report() { # before after requests
  python3 - "$1" "$2" "$3" "$(getconf CLK_TCK)" <<'PY'
import sys
def parse(text):
    out = {}
    for line in text.splitlines():
        key, *rest = line.split()
        out[key] = rest
    return out
before, after, requests, tick = parse(sys.argv[1]), parse(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def threads(s):
    return {k: int(v) for k, v in (item.split("=") for item in s["threads"])}
t0, t1 = threads(before), threads(after)
used = {n: (t1[n] - t0.get(n, 0)) * 1e6 / tick / requests for n in t1}
print("    CPU per request:", "  ".join(f"{n} {us:.1f} µs" for n, us in sorted(used.items()) if us > 0))
total, idle = (int(a) - int(b) for a, b in zip(after["cpus"], before["cpus"]))
n, events, commit, fast = (float(a) - float(b) for a, b in zip(after["batches"], before["batches"]))
line = f"    CPUs idle {100 * idle / total:.1f}%"
if n > 0:
    line += (f"; audit batches {n:.0f}, {events / n:.1f} events each, commit {1e6 * commit / n:.0f} µs"
             f" mean, {100 * (n - fast) / n:.2f}% over 3.2 ms")
print(line)
PY
}

run() { # name url script [server pid]
  local out before perf=""
  if [ -n "${4:-}" ]; then
    before=$(snapshot "$4")
    if [ -n "${PERF_DIR:-}" ]; then
      mkdir -p "$PERF_DIR"
      perf record -F 999 -g -p "$4" -o "$PERF_DIR/$(basename "$3" .lua).perf" -- sleep "$DURATION" \
        >/dev/null 2>&1 &
      perf=$!
    fi
  fi
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$3" "$2")
  if [ -n "$perf" ]; then wait "$perf" || true; fi
  printf '%-40s %12s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/{print $NF}' <<<"$out" | grep . || echo 0)"
  if [ -n "${4:-}" ]; then
    report "$before" "$(snapshot "$4")" "$(awk '/requests in/{print $1}' <<<"$out")"
  fi
}

run "bare axum, fixed body" http://127.0.0.1:4597/ "$WORK/decrypt.lua"
for op in $OPS; do
  run "${NAMES[$op]}" http://127.0.0.1:$PORT/ "$WORK/$op.lua" "$KEYHOLD_PID"
done
run "bare axum, fixed body (again)" http://127.0.0.1:4597/ "$WORK/decrypt.lua"
if [ -n "${PERF_DIR:-}" ]; then
  echo "profiles in $PERF_DIR: perf script -i $PERF_DIR/${OPS%% *}.perf | scripts/perf-inclusive.py"
fi
