#!/usr/bin/env bash
# secrets_rotation_cli.sh - a real rotation through `aws secretsmanager rotate-secret`.
#
#   KEYHOLD_CONFIG=scripts/scenarios/rotation_dev.toml \
#     scripts/with-server.sh bash scripts/scenarios/secrets_rotation_cli.sh
#
# The server runs the rotation function of rotation_dev.toml (a Python Lambda handler behind
# scripts/rotation/lambda_shim.py) for the four steps; the handler's "service" is a file.
# Checks the staging labels, the values, LastRotatedDate, and that a failing step leaves
# AWSCURRENT alone and AWSPENDING for the retry that RotateSecret starts.
# Prints "secrets-rotation-cli: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT, e.g. ENDPOINT=http://127.0.0.1:4566}"
export AWS_ACCESS_KEY_ID=000000000000 AWS_SECRET_ACCESS_KEY=dev-mode-secret AWS_DEFAULT_REGION=us-east-1
sm() { aws --endpoint-url "$ENDPOINT" secretsmanager "$@"; }
fail() { echo "secrets-rotation-cli: FAIL: $*" >&2; exit 1; }
fn=arn:aws:lambda:us-east-1:000000000000:function:file-service-rotator
work="$(mktemp -d)"
name="scenario/cli-rotation-$RANDOM$RANDOM"
trap 'sm delete-secret --secret-id "$name" --force-delete-without-recovery >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "secrets-rotation-cli: create"
value=$(jq -cn --arg f "$work/pw" --arg m "$work/refuse" \
  '{username:"app",password:"initial-password",password_file:$f,fail_marker:$m}')
first=$(sm create-secret --name "$name" --secret-string "$value" --query VersionId --output text)

current_version() { sm get-secret-value --secret-id "$name" --query VersionId --output text; }

echo "secrets-rotation-cli: a failing step (the service refuses)"
touch "$work/refuse"
token=$(sm rotate-secret --secret-id "$name" --rotation-lambda-arn "$fn" \
  --rotation-rules AutomaticallyAfterDays=30 --query VersionId --output text)
[ -n "$token" ] && [ "$token" != None ] || fail "rotate-secret answered no VersionId"
for _ in $(seq 1 300); do
  stages=$(sm list-secret-version-ids --secret-id "$name" --output json)
  pending=$(jq -r --arg t "$token" '.Versions[] | select(.VersionId == $t) | .VersionStages | join(",")' <<<"$stages")
  if [ "$pending" = AWSPENDING ] && sm get-secret-value --secret-id "$name" --version-stage AWSPENDING >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
sleep 3  # setSecret runs and fails: nothing may move
[ "$(current_version)" = "$first" ] || fail "AWSCURRENT moved after a failed step"
[ ! -e "$work/pw" ] || fail "setSecret should have failed"
[ "$(sm describe-secret --secret-id "$name" --query LastRotatedDate --output text)" = None ] \
  || fail "a failed rotation is no rotation"

echo "secrets-rotation-cli: rotate-secret again: AWS's error, and the rotation is reattempted"
rm "$work/refuse"
if out=$(sm rotate-secret --secret-id "$name" 2>&1); then fail "rotate-secret should refuse: $out"; fi
grep -q "A previous rotation isn't complete. That rotation will be reattempted." <<<"$out" || fail "$out"
rotated=
for _ in $(seq 1 300); do
  if [ "$(sm describe-secret --secret-id "$name" --query LastRotatedDate --output text)" != None ]; then
    rotated=yes; break
  fi
  sleep 0.2
done
[ -n "$rotated" ] || fail "the reattempted rotation did not finish"
[ "$(current_version)" = "$token" ] || fail "AWSCURRENT is not on $token"
new=$(sm get-secret-value --secret-id "$name" --query SecretString --output text | jq -r .password)
old=$(sm get-secret-value --secret-id "$name" --version-stage AWSPREVIOUS --query SecretString --output text | jq -r .password)
[ "$old" = initial-password ] || fail "AWSPREVIOUS is $old"
[ "$new" != initial-password ] && [ "$(cat "$work/pw")" = "$new" ] || fail "the service does not have the new password"

echo "secrets-rotation-cli: describe-secret shows the rotation"
d=$(sm describe-secret --secret-id "$name" --output json)
[ "$(jq -r .RotationEnabled <<<"$d")" = true ] || fail "$d"
[ "$(jq -r .RotationRules.AutomaticallyAfterDays <<<"$d")" = 30 ] || fail "$d"
[ "$(jq -r .NextRotationDate <<<"$d")" != null ] || fail "$d"

echo "secrets-rotation-cli: PASS"
