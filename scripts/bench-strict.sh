#!/usr/bin/env bash
# bench-strict.sh — Decrypt requests/s with strict SigV4 and policies on, beside the same
# load against a dev-mode server signed as an account root.
#
# Strict: `keyhold init` makes the administrator; it creates an IAM user whose inline policy
# allows the KMS calls the benchmark makes and holds a Deny with an encryption-context
# condition; the benchmark's key gets the default key policy, which delegates to IAM. So
# every Decrypt authenticates an IAM key and evaluates the key policy, the identity policy
# and a condition.
#   cargo build --release -p keyhold && scripts/bench-strict.sh
set -euo pipefail
K=${K:-${CARGO_TARGET_DIR:-$HOME/.cache/keyhold-target}/release/keyhold}
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
cat >"$WORK/keyhold.toml" <<TOML
listen = "127.0.0.1:4599"
data_dir = "$WORK/strict"
account_id = "111122223333"
TOML

"$K" init --config "$WORK/keyhold.toml" >"$WORK/admin.txt"
ADMIN_KEY=$(awk '/aws_access_key_id/{print $3}' "$WORK/admin.txt")
ADMIN_SECRET=$(awk '/aws_secret_access_key/{print $3}' "$WORK/admin.txt")
"$K" serve --config "$WORK/keyhold.toml" >"$WORK/strict.log" 2>&1 &
PID=$!
sleep 1
export AWS_ACCESS_KEY_ID=$ADMIN_KEY AWS_SECRET_ACCESS_KEY=$ADMIN_SECRET AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:4599 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
aws iam create-user --user-name bench >/dev/null
aws iam put-user-policy --user-name bench --policy-name use-keys --policy-document '{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["kms:CreateKey","kms:DescribeKey","kms:Encrypt","kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"},
 {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:tenant":"blocked"}}}]}'
read -r KEY SECRET < <(aws iam create-access-key --user-name bench \
  --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)

echo "== strict mode, IAM user, identity policy + key policy delegating to IAM"
"$K" bench --endpoint http://127.0.0.1:4599 --access-key "$KEY" --secret-key "$SECRET" \
  --operation decrypt --connections 32 --duration 8
kill "$PID"; wait "$PID" || true

"$K" serve --data-dir "$WORK/dev" --listen 127.0.0.1:4598 >"$WORK/dev.log" 2>&1 &
PID=$!
sleep 1
echo "== dev mode, signed by the client as an account root (no identity policies)"
"$K" bench --endpoint http://127.0.0.1:4598 --access-key 111122223333 --secret-key dev \
  --operation decrypt --connections 32 --duration 8
