#!/usr/bin/env bash
# bench-wrk.sh — requests/s from a second process (wrk: 1 thread, 32 keep-alive connections,
# the same SigV4-signed request replayed, 8 s) against a release Keyhold in dev mode with the
# durable audit trail, beside the bare HTTP stack (examples/bare_axum.rs) in the same run.
#   cargo build --release -p keyhold --bin keyhold -p keyhold-server --example bare_axum && scripts/bench-wrk.sh
# Needs wrk (apt-get install wrk), the aws CLI and botocore (pip install awscli).
set -euo pipefail
T=${CARGO_TARGET_DIR:-$HOME/.cache/keyhold-target}/release
K=${K:-$T/keyhold}
BARE=${BARE:-$T/examples/bare_axum}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
PORT=4596
"$K" serve --data-dir "$WORK/data" --listen 127.0.0.1:$PORT >"$WORK/keyhold.log" 2>&1 &
PIDS+=($!)
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

run() { # name url script
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$3" "$2")
  printf '%-40s %12s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/{print $NF}' <<<"$out" | grep . || echo 0)"
}
run "bare axum, fixed body" http://127.0.0.1:4597/ "$WORK/decrypt.lua"
run "KMS Decrypt (durable audit)" http://127.0.0.1:$PORT/ "$WORK/decrypt.lua"
run "Secrets Manager GetSecretValue" http://127.0.0.1:$PORT/ "$WORK/gsv.lua"
run "SSM GetParameter (SecureString)" http://127.0.0.1:$PORT/ "$WORK/gp.lua"
run "bare axum, fixed body (again)" http://127.0.0.1:4597/ "$WORK/decrypt.lua"
