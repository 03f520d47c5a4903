#!/usr/bin/env bash
# iam_cli.sh — IAM and STS through the real `aws` CLI: a user and its access key made with
# `aws iam`, an identity policy, a KMS key policy that delegates to IAM, and the allowed and
# the denied call with the new user's own (verified) credentials; then a role assumed.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/iam_cli.sh   (or via scripts/with-server.sh)
# Exits non-zero at the first failed check; prints "iam-cli: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"

ACCOUNT=111122223333
# Dev mode: an unknown 12-digit access key id is that account's root.
export AWS_ACCESS_KEY_ID=$ACCOUNT AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
awsx() { aws --endpoint-url "$ENDPOINT" "$@"; }
# as KEY SECRET [TOKEN] -- CMD...: run the CLI with other credentials.
as() {
  local key=$1 secret=$2 token=""; shift 2
  if [ "$1" != "--" ]; then token=$1; shift; fi
  shift
  AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token \
    aws --endpoint-url "$ENDPOINT" "$@"
}

STEP=start
fail() { echo "iam-cli: FAIL at '$STEP': $*" >&2; exit 1; }
step() { STEP="$1"; echo "iam-cli: $1"; }
expect_error() {  # expect_error CODE CMD... — CMD must fail with CODE in its message
  local code=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected $code, but the call succeeded: $out"; fi
  grep -q "($code)" <<<"$out" || fail "expected $code, got: $out"
}
TMPD=$(mktemp -d); trap 'rm -rf "$TMPD"' EXIT

step "create a user and an access key"
awsx iam create-user --user-name app --path /services/ >"$TMPD/user.json"
[ "$(jq -r .User.Arn "$TMPD/user.json")" = "arn:aws:iam::$ACCOUNT:user/services/app" ] || fail "user ARN"
jq -r .User.UserId "$TMPD/user.json" | grep -q '^AIDA' || fail "user id"
expect_error EntityAlreadyExists awsx iam create-user --user-name APP
awsx iam create-access-key --user-name app >"$TMPD/key.json"
APP_KEY=$(jq -r .AccessKey.AccessKeyId "$TMPD/key.json")
APP_SECRET=$(jq -r .AccessKey.SecretAccessKey "$TMPD/key.json")
[[ "$APP_KEY" == AKIA* ]] || fail "access key id $APP_KEY"
[ "${#APP_SECRET}" = 40 ] || fail "secret length"
[ "$(awsx iam list-access-keys --user-name app --query 'AccessKeyMetadata[0].Status' --output text)" = Active ] || fail "list-access-keys"

step "the new key authenticates as the user, and only with its secret"
[ "$(as "$APP_KEY" "$APP_SECRET" -- sts get-caller-identity --query Arn --output text)" = "arn:aws:iam::$ACCOUNT:user/services/app" ] \
  || fail "get-caller-identity"
expect_error SignatureDoesNotMatch as "$APP_KEY" "wrong-secret-wrong-secret-wrong-secret00" -- sts get-caller-identity
expect_error AccessDenied as "$APP_KEY" "$APP_SECRET" -- iam list-users

step "a KMS key whose policy delegates to IAM"
KEY_ARN=$(awsx kms create-key --description "iam scenario" --query KeyMetadata.Arn --output text)
cat >"$TMPD/key-policy.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCOUNT:root"},"Action":"kms:*","Resource":"*"}]}
JSON
awsx kms put-key-policy --key-id "$KEY_ARN" --policy-name default --policy "file://$TMPD/key-policy.json"

step "without an identity policy the user is denied"
printf 'scenario plaintext' >"$TMPD/plain.txt"
expect_error AccessDeniedException as "$APP_KEY" "$APP_SECRET" -- kms encrypt --key-id "$KEY_ARN" --plaintext "fileb://$TMPD/plain.txt"

step "put a user policy: Encrypt allowed, Decrypt not"
cat >"$TMPD/user-policy.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"$KEY_ARN"}]}
JSON
awsx iam put-user-policy --user-name app --policy-name use-key --policy-document "file://$TMPD/user-policy.json"
[ "$(awsx iam list-user-policies --user-name app --query 'PolicyNames[0]' --output text)" = use-key ] || fail "list-user-policies"
# The CLI decodes the URL-encoded document IAM returns.
[ "$(awsx iam get-user-policy --user-name app --policy-name use-key --query 'PolicyDocument.Statement[0].Action[0]' --output text)" = kms:Encrypt ] \
  || fail "get-user-policy"

step "the allowed call"
as "$APP_KEY" "$APP_SECRET" -- kms encrypt --key-id "$KEY_ARN" --plaintext "fileb://$TMPD/plain.txt" \
  --query CiphertextBlob --output text | base64 -d >"$TMPD/ct.bin"
[ -s "$TMPD/ct.bin" ] || fail "no ciphertext"

step "the denied call"
out=$(as "$APP_KEY" "$APP_SECRET" -- kms decrypt --ciphertext-blob "fileb://$TMPD/ct.bin" 2>&1) && fail "decrypt succeeded: $out"
grep -q "(AccessDeniedException)" <<<"$out" || fail "expected AccessDeniedException: $out"
grep -q "is not authorized to perform: kms:Decrypt" <<<"$out" || fail "message: $out"
grep -q "because no identity-based policy allows the kms:Decrypt action" <<<"$out" || fail "message: $out"

step "a role the user may assume, allowed to decrypt"
cat >"$TMPD/trust.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCOUNT:user/services/app"},"Action":"sts:AssumeRole"}]}
JSON
awsx iam create-role --role-name decryptor --assume-role-policy-document "file://$TMPD/trust.json" >/dev/null
awsx iam put-role-policy --role-name decryptor --policy-name decrypt \
  --policy-document "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"kms:Decrypt\",\"Resource\":\"$KEY_ARN\"}]}"
as "$APP_KEY" "$APP_SECRET" -- sts assume-role --role-arn "arn:aws:iam::$ACCOUNT:role/decryptor" \
  --role-session-name cli >"$TMPD/session.json"
S_KEY=$(jq -r .Credentials.AccessKeyId "$TMPD/session.json")
S_SECRET=$(jq -r .Credentials.SecretAccessKey "$TMPD/session.json")
S_TOKEN=$(jq -r .Credentials.SessionToken "$TMPD/session.json")
[[ "$S_KEY" == ASIA* ]] || fail "session key $S_KEY"
[ "$(as "$S_KEY" "$S_SECRET" "$S_TOKEN" -- sts get-caller-identity --query Arn --output text)" = "arn:aws:sts::$ACCOUNT:assumed-role/decryptor/cli" ] \
  || fail "assumed identity"
as "$S_KEY" "$S_SECRET" "$S_TOKEN" -- kms decrypt --ciphertext-blob "fileb://$TMPD/ct.bin" \
  --query Plaintext --output text | base64 -d | cmp -s - "$TMPD/plain.txt" || fail "decrypt as the role"
expect_error UnrecognizedClientException as "$S_KEY" "$S_SECRET" "not-the-token" -- kms list-keys

step "an inactive key is refused; a deleted user is gone"
awsx iam update-access-key --user-name app --access-key-id "$APP_KEY" --status Inactive
expect_error InvalidClientTokenId as "$APP_KEY" "$APP_SECRET" -- sts get-caller-identity
expect_error DeleteConflict awsx iam delete-user --user-name app
awsx iam delete-access-key --user-name app --access-key-id "$APP_KEY"
awsx iam delete-user-policy --user-name app --policy-name use-key
awsx iam delete-user --user-name app
expect_error NoSuchEntity awsx iam get-user --user-name app

echo "iam-cli: PASS"
