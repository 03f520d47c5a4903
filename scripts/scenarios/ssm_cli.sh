#!/usr/bin/env bash
# ssm_cli.sh — Parameter Store through the real `aws` CLI, as users drive it.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/ssm_cli.sh   (or via scripts/with-server.sh)
# Exits non-zero at the first failed check; prints "ssm-cli: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
awsx() { aws --endpoint-url "$ENDPOINT" "$@"; }

STEP=start
fail() { echo "ssm-cli: FAIL at '$STEP': $*" >&2; exit 1; }
step() { STEP="$1"; echo "ssm-cli: $1"; }
expect_error() {  # expect_error CODE CMD... — CMD must fail with CODE in its message
  local code=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected $code, but the call succeeded: $out"; fi
  grep -q "($code)" <<<"$out" || fail "expected $code, got: $out"
}
ARN_PREFIX=arn:aws:ssm:eu-west-1:111122223333:parameter

step "put-parameter String and StringList"
[ "$(awsx ssm put-parameter --name /app/config/url --value db.internal:5432 --type String \
      --description "database endpoint" --query Version --output text)" = 1 ] || fail "version 1"
awsx ssm put-parameter --name /app/config/hosts --value "a.internal,b.internal" --type StringList >/dev/null
awsx ssm put-parameter --name /app/config/deep/flag --value on --type String >/dev/null
expect_error ParameterAlreadyExists awsx ssm put-parameter --name /app/config/url --value other --type String

step "put-parameter --type SecureString (the AWS-managed key aws/ssm)"
awsx ssm put-parameter --name /app/secret/db-password --value 'hunter2-but-longer' --type SecureString >/dev/null
CIPHER=$(awsx ssm get-parameter --name /app/secret/db-password --query Parameter.Value --output text)
[ "$CIPHER" != 'hunter2-but-longer' ] || fail "the value without --with-decryption is the ciphertext"
base64 -d <<<"$CIPHER" >/dev/null || fail "the ciphertext is base64"
[ "$(awsx kms describe-key --key-id alias/aws/ssm --query KeyMetadata.KeyManager --output text)" = AWS ] || fail "aws/ssm key"

step "get-parameter --with-decryption"
[ "$(awsx ssm get-parameter --name /app/secret/db-password --with-decryption \
      --query Parameter.Value --output text)" = 'hunter2-but-longer' ] || fail "decrypted value"
[ "$(awsx ssm get-parameter --name /app/secret/db-password --query Parameter.ARN --output text)" \
  = "$ARN_PREFIX/app/secret/db-password" ] || fail "ARN"
[ "$(awsx ssm get-parameter --name "$ARN_PREFIX/app/config/url" --query Parameter.Value --output text)" \
  = db.internal:5432 ] || fail "lookup by ARN"

step "SecureString under a customer key"
KEY_ID=$(awsx kms create-key --query KeyMetadata.KeyId --output text)
awsx ssm put-parameter --name /app/secret/api-key --value 'k-123456' --type SecureString --key-id "$KEY_ID" >/dev/null
[ "$(awsx ssm describe-parameters --parameter-filters Key=Name,Values=/app/secret/api-key \
      --query 'Parameters[0].KeyId' --output text)" = "$KEY_ID" ] || fail "KeyId"
awsx kms disable-key --key-id "$KEY_ID"
expect_error InvalidKeyId awsx ssm get-parameter --name /app/secret/api-key --with-decryption
awsx kms enable-key --key-id "$KEY_ID"

step "get-parameters-by-path --recursive"
[ "$(awsx ssm get-parameters-by-path --path /app --recursive --query 'length(Parameters)' --output text)" = 5 ] \
  || fail "five parameters below /app"
[ "$(awsx ssm get-parameters-by-path --path /app/config --query 'join(`,`, Parameters[].Name)' --output text)" \
  = "/app/config/hosts,/app/config/url" ] || fail "one level"
[ "$(awsx ssm get-parameters-by-path --path /app/secret --recursive --with-decryption \
      --query 'join(`,`, Parameters[].Value)' --output text)" = "k-123456,hunter2-but-longer" ] || fail "decrypted by path"
[ "$(awsx ssm get-parameters-by-path --path /app --recursive --page-size 2 --output json | jq '.Parameters | length')" = 5 ] \
  || fail "paged by path"

step "versions and label-parameter-version"
awsx ssm put-parameter --name /app/config/url --value db2.internal:5432 --overwrite >/dev/null
[ "$(awsx ssm label-parameter-version --name /app/config/url --parameter-version 1 --labels stable 1bad \
      --query 'join(`,`, InvalidLabels)' --output text)" = 1bad ] || fail "invalid labels"
[ "$(awsx ssm get-parameter --name /app/config/url:stable --query Parameter.Value --output text)" = db.internal:5432 ] \
  || fail "name:label"
[ "$(awsx ssm get-parameter --name /app/config/url:2 --query Parameter.Value --output text)" = db2.internal:5432 ] \
  || fail "name:version"
[ "$(awsx ssm get-parameter-history --name /app/config/url --query 'Parameters[0].Labels[0]' --output text)" = stable ] \
  || fail "history labels"
awsx ssm unlabel-parameter-version --name /app/config/url --parameter-version 1 --labels stable >/dev/null
expect_error ParameterVersionNotFound awsx ssm get-parameter --name /app/config/url:stable

step "get-parameters and describe-parameters"
[ "$(awsx ssm get-parameters --names /app/config/url /nope --query 'InvalidParameters[0]' --output text)" = /nope ] \
  || fail "invalid parameters"
[ "$(awsx ssm describe-parameters --parameter-filters Key=Type,Values=SecureString \
      --query 'length(Parameters)' --output text)" = 2 ] || fail "describe by type"
[ "$(awsx ssm describe-parameters --parameter-filters Key=Path,Option=Recursive,Values=/app/config \
      --query 'length(Parameters)' --output text)" = 3 ] || fail "describe by path"

step "tiers and policies"
[ "$(awsx ssm put-parameter --name /app/big --value "$(head -c 5000 /dev/zero | tr '\0' x)" --type String \
      --tier Intelligent-Tiering --query Tier --output text)" = Advanced ] || fail "intelligent tiering"
expect_error ValidationException awsx ssm put-parameter --name /app/big --value small --tier Standard --overwrite
awsx ssm put-parameter --name /app/big --value small --overwrite \
  --policies '[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2099-01-01T00:00:00.000Z"}}]' >/dev/null
[ "$(awsx ssm describe-parameters --parameter-filters Key=Name,Values=/app/big \
      --query 'Parameters[0].Policies[0].PolicyType' --output text)" = Expiration ] || fail "policies"

step "tags"
awsx ssm add-tags-to-resource --resource-type Parameter --resource-id /app/config/url --tags Key=team,Value=core
[ "$(awsx ssm list-tags-for-resource --resource-type Parameter --resource-id /app/config/url \
      --query 'TagList[0].Value' --output text)" = core ] || fail "tags"
awsx ssm remove-tags-from-resource --resource-type Parameter --resource-id /app/config/url --tag-keys team

step "Secrets Manager reference"
awsx secretsmanager create-secret --name cli/token --secret-string 't0k3n' >/dev/null
[ "$(awsx ssm get-parameter --name /aws/reference/secretsmanager/cli/token --with-decryption \
      --query Parameter.Value --output text)" = t0k3n ] || fail "secret reference"
expect_error ValidationException awsx ssm get-parameter --name /aws/reference/secretsmanager/cli/token

step "errors and delete"
expect_error ValidationException awsx ssm put-parameter --name "bad name" --value x --type String
expect_error HierarchyLevelLimitExceededException awsx ssm put-parameter \
  --name /1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16 --value x --type String
awsx ssm delete-parameter --name /app/config/deep/flag
expect_error ParameterNotFound awsx ssm get-parameter --name /app/config/deep/flag
[ "$(awsx ssm delete-parameters --names /app/config/hosts /nope --query 'join(`,`, DeletedParameters)' --output text)" \
  = /app/config/hosts ] || fail "delete-parameters"

echo "ssm-cli: PASS"
