#!/usr/bin/env bash
# kms_cli.sh — the KMS API through the real `aws` CLI, as users drive it.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/kms_cli.sh   (or via scripts/with-server.sh)
# Exits non-zero at the first failed check; prints "kms-cli: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
awsx() { aws --endpoint-url "$ENDPOINT" "$@"; }
as_account() { local acct=$1; shift; AWS_ACCESS_KEY_ID=$acct aws --endpoint-url "$ENDPOINT" "$@"; }

STEP=start
fail() { echo "kms-cli: FAIL at '$STEP': $*" >&2; exit 1; }
step() { STEP="$1"; echo "kms-cli: $1"; }
expect_error() {  # expect_error CODE CMD... — CMD must fail with CODE in its message
  local code=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected $code, but the call succeeded: $out"; fi
  grep -q "($code)" <<<"$out" || fail "expected $code, got: $out"
}
TMPD=$(mktemp -d); trap 'rm -rf "$TMPD"' EXIT

step "create-key with description and tags"
awsx kms create-key --description "cli scenario" --tags TagKey=team,TagValue=core >"$TMPD/key.json"
KEY_ID=$(jq -r .KeyMetadata.KeyId "$TMPD/key.json")
KEY_ARN=$(jq -r .KeyMetadata.Arn "$TMPD/key.json")
[ "$KEY_ARN" = "arn:aws:kms:eu-west-1:111122223333:key/$KEY_ID" ] || fail "ARN $KEY_ARN"
[ "$(jq -r .KeyMetadata.KeyState "$TMPD/key.json")" = Enabled ] || fail "state"

step "aliases"
awsx kms create-alias --alias-name alias/cli-app --target-key-id "$KEY_ID"
[ "$(awsx kms describe-key --key-id alias/cli-app --query KeyMetadata.KeyId --output text)" = "$KEY_ID" ] || fail "alias lookup"
[ "$(awsx kms describe-key --key-id arn:aws:kms:eu-west-1:111122223333:alias/cli-app --query KeyMetadata.Arn --output text)" = "$KEY_ARN" ] || fail "alias ARN lookup"
expect_error AlreadyExistsException awsx kms create-alias --alias-name alias/cli-app --target-key-id "$KEY_ID"
[ "$(awsx kms list-aliases --key-id "$KEY_ID" --query 'length(Aliases)' --output text)" = 1 ] || fail "list-aliases --key-id"

step "encrypt / decrypt with an encryption context"
printf 'attack at dawn' >"$TMPD/plain.txt"
awsx kms encrypt --key-id alias/cli-app --plaintext "fileb://$TMPD/plain.txt" \
  --encryption-context purpose=scenario,tenant=a --query CiphertextBlob --output text | base64 -d >"$TMPD/ct.bin"
awsx kms decrypt --ciphertext-blob "fileb://$TMPD/ct.bin" --encryption-context purpose=scenario,tenant=a \
  --query Plaintext --output text | base64 -d >"$TMPD/back.txt"
cmp -s "$TMPD/plain.txt" "$TMPD/back.txt" || fail "round trip"
expect_error InvalidCiphertextException awsx kms decrypt --ciphertext-blob "fileb://$TMPD/ct.bin" --encryption-context purpose=other,tenant=a

step "re-encrypt to a second key"
KEY2=$(awsx kms create-key --query KeyMetadata.KeyId --output text)
awsx kms re-encrypt --ciphertext-blob "fileb://$TMPD/ct.bin" --source-encryption-context purpose=scenario,tenant=a \
  --destination-key-id "$KEY2" --query CiphertextBlob --output text | base64 -d >"$TMPD/ct2.bin"
[ "$(awsx kms decrypt --ciphertext-blob "fileb://$TMPD/ct2.bin" --query KeyId --output text)" = "arn:aws:kms:eu-west-1:111122223333:key/$KEY2" ] || fail "re-encrypted under the second key"

step "data keys and random bytes"
[ "$(awsx kms generate-data-key --key-id alias/cli-app --number-of-bytes 64 --query Plaintext --output text | base64 -d | wc -c)" = 64 ] || fail "64-byte data key"
awsx kms generate-data-key-without-plaintext --key-id "$KEY_ID" --key-spec AES_128 --query CiphertextBlob --output text | base64 -d >"$TMPD/dk.bin"
[ "$(awsx kms decrypt --ciphertext-blob "fileb://$TMPD/dk.bin" --query Plaintext --output text | base64 -d | wc -c)" = 16 ] || fail "AES_128 data key"
[ "$(awsx kms generate-random --number-of-bytes 48 --query Plaintext --output text | base64 -d | wc -c)" = 48 ] || fail "generate-random"

step "tags"
awsx kms tag-resource --key-id "$KEY_ID" --tags TagKey=env,TagValue=ci
[ "$(awsx kms list-resource-tags --key-id "$KEY_ID" --query 'join(`,`, Tags[].TagKey)' --output text)" = "env,team" ] || fail "tags"
awsx kms untag-resource --key-id "$KEY_ID" --tag-keys env
expect_error TagException awsx kms tag-resource --key-id "$KEY_ID" --tags TagKey=aws:x,TagValue=y

step "key policy: cross-account access needs the key policy"
CT_B64=$(base64 -w0 "$TMPD/ct.bin")
expect_error AccessDeniedException as_account 444455556666 kms decrypt --ciphertext-blob "fileb://$TMPD/ct.bin" --encryption-context purpose=scenario,tenant=a
cat >"$TMPD/policy.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"partner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*",
  "Condition":{"StringEquals":{"kms:EncryptionContext:tenant":"a"}}}]}
JSON
awsx kms put-key-policy --key-id "$KEY_ID" --policy-name default --policy "file://$TMPD/policy.json"
as_account 444455556666 kms decrypt --ciphertext-blob "fileb://$TMPD/ct.bin" --encryption-context purpose=scenario,tenant=a \
  --query Plaintext --output text | base64 -d | cmp -s - "$TMPD/plain.txt" || fail "partner decrypt"
[ "$(awsx kms list-key-policies --key-id "$KEY_ID" --query 'PolicyNames[0]' --output text)" = default ] || fail "list-key-policies"
awsx kms get-key-policy --key-id "$KEY_ID" --policy-name default --query Policy --output text | grep -q partner || fail "get-key-policy"
: "$CT_B64"

step "grants: another account decrypts through a grant, until it is revoked"
GKEY=$(awsx kms create-key --query KeyMetadata.Arn --output text)
awsx kms encrypt --key-id "$GKEY" --plaintext "fileb://$TMPD/plain.txt" --encryption-context dept=it \
  --query CiphertextBlob --output text | base64 -d >"$TMPD/gct.bin"
expect_error AccessDeniedException as_account 444455556666 kms decrypt --ciphertext-blob "fileb://$TMPD/gct.bin" --encryption-context dept=it
awsx kms create-grant --key-id "$GKEY" --grantee-principal arn:aws:iam::444455556666:root \
  --operations Decrypt --constraints EncryptionContextSubset={dept=it} --name partner-decrypt >"$TMPD/grant.json"
GRANT_ID=$(jq -r .GrantId "$TMPD/grant.json")
[ "${#GRANT_ID}" = 64 ] || fail "grant id $GRANT_ID"
[ -n "$(jq -r .GrantToken "$TMPD/grant.json")" ] || fail "grant token"
[ "$(awsx kms create-grant --key-id "$GKEY" --grantee-principal arn:aws:iam::444455556666:root \
  --operations Decrypt --constraints EncryptionContextSubset={dept=it} --name partner-decrypt \
  --query GrantId --output text)" = "$GRANT_ID" ] || fail "create-grant with the same name is idempotent"
awsx kms list-grants --key-id "$GKEY" >"$TMPD/grants.json"
[ "$(jq '.Grants | length' "$TMPD/grants.json")" = 1 ] || fail "list-grants"
[ "$(jq -r '.Grants[0].GranteePrincipal' "$TMPD/grants.json")" = arn:aws:iam::444455556666:root ] || fail "grantee"
[ "$(jq -r '.Grants[0].Constraints.EncryptionContextSubset.dept' "$TMPD/grants.json")" = it ] || fail "constraint"
as_account 444455556666 kms decrypt --ciphertext-blob "fileb://$TMPD/gct.bin" --encryption-context dept=it \
  --query Plaintext --output text | base64 -d | cmp -s - "$TMPD/plain.txt" || fail "grantee decrypt"
expect_error AccessDeniedException as_account 444455556666 kms encrypt --key-id "$GKEY" --plaintext "fileb://$TMPD/plain.txt" --encryption-context dept=it
expect_error ValidationException awsx kms create-grant --key-id "$GKEY" --grantee-principal arn:aws:iam::444455556666:root --operations CreateGrant
awsx kms revoke-grant --key-id "$GKEY" --grant-id "$GRANT_ID"
expect_error AccessDeniedException as_account 444455556666 kms decrypt --ciphertext-blob "fileb://$TMPD/gct.bin" --encryption-context dept=it
[ "$(awsx kms list-grants --key-id "$GKEY" --query 'length(Grants)' --output text)" = 0 ] || fail "revoked grant listed"

step "disable / enable"
awsx kms disable-key --key-id "$KEY_ID"
expect_error DisabledException awsx kms encrypt --key-id "$KEY_ID" --plaintext "fileb://$TMPD/plain.txt"
awsx kms enable-key --key-id "$KEY_ID"

step "list-keys pagination"
for _ in 1 2 3; do awsx kms create-key --query KeyMetadata.KeyId --output text >/dev/null; done
[ "$(awsx kms list-keys --page-size 2 --output json | jq '.Keys | length')" = 6 ] || fail "paged list-keys"

step "schedule and cancel deletion"
expect_error ValidationException awsx kms schedule-key-deletion --key-id "$KEY_ID" --pending-window-in-days 3
[ "$(awsx kms schedule-key-deletion --key-id "$KEY_ID" --pending-window-in-days 7 --query KeyState --output text)" = PendingDeletion ] || fail "scheduled"
expect_error KMSInvalidStateException awsx kms encrypt --key-id "$KEY_ID" --plaintext "fileb://$TMPD/plain.txt"
awsx kms cancel-key-deletion --key-id "$KEY_ID" >/dev/null
[ "$(awsx kms describe-key --key-id "$KEY_ID" --query KeyMetadata.KeyState --output text)" = Disabled ] || fail "cancelled → Disabled"

step "errors"
expect_error NotFoundException awsx kms describe-key --key-id 11111111-2222-3333-4444-555555555555
expect_error NotFoundException awsx kms describe-key --key-id alias/missing

step "cloudtrail lookup-events finds the decrypts"
N=$(awsx cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=Decrypt --output json \
  | jq '[.Events[] | select(.EventName == "Decrypt")] | length')
[ "$N" -ge 3 ] || fail "expected the scenario's decrypts in the trail, found $N"
awsx cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=Decrypt --max-items 1 \
  --output json | jq -r '.Events[0].CloudTrailEvent' | jq -e '.eventSource == "kms.amazonaws.com" and .eventName == "Decrypt" and .requestParameters.ciphertextBlob == null' >/dev/null \
  || fail "CloudTrailEvent carries the record"

echo "kms-cli: PASS"
