#!/usr/bin/env bash
# kms_lifecycle_cli.sh — a KMS key's life through the real `aws` CLI: on-demand rotation
# (a ciphertext from before the rotation still decrypts), and imported key material (BYOK)
# wrapped with `openssl` exactly as AWS's "Importing key material" guide shows it, for both
# RSAES_OAEP_SHA_256 and RSA_AES_KEY_WRAP_SHA_256.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/kms_lifecycle_cli.sh   (or via scripts/with-server.sh)
# Exits non-zero at the first failed check; prints "kms-lifecycle-cli: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
awsx() { aws --endpoint-url "$ENDPOINT" "$@"; }

STEP=start
fail() { echo "kms-lifecycle-cli: FAIL at '$STEP': $*" >&2; exit 1; }
step() { STEP="$1"; echo "kms-lifecycle-cli: $1"; }
expect_error() {  # expect_error CODE CMD... — CMD must fail with CODE in its message
  local code=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected $code, but the call succeeded: $out"; fi
  grep -q "($code)" <<<"$out" || fail "expected $code, got: $out"
}
TMPD=$(mktemp -d); trap 'rm -rf "$TMPD"' EXIT
cd "$TMPD"

roundtrip() {  # roundtrip KEY TEXT — encrypt under KEY, decrypt, compare
  printf '%s' "$2" >plain.txt
  awsx kms encrypt --key-id "$1" --plaintext fileb://plain.txt --query CiphertextBlob --output text | base64 -d >ct.bin
  awsx kms decrypt --ciphertext-blob fileb://ct.bin --query Plaintext --output text | base64 -d >back.txt
  cmp -s plain.txt back.txt || fail "round trip under $1"
}

step "rotate on demand; a ciphertext from before the rotation still decrypts"
KEY=$(awsx kms create-key --description "lifecycle" --query KeyMetadata.KeyId --output text)
FIRST=$(awsx kms describe-key --key-id "$KEY" --query KeyMetadata.CurrentKeyMaterialId --output text)
printf 'made before the rotation' >old.txt
awsx kms encrypt --key-id "$KEY" --plaintext fileb://old.txt --query CiphertextBlob --output text | base64 -d >old.bin
awsx kms rotate-key-on-demand --key-id "$KEY" >/dev/null
SECOND=$(awsx kms describe-key --key-id "$KEY" --query KeyMetadata.CurrentKeyMaterialId --output text)
[ "$FIRST" != "$SECOND" ] || fail "the current material did not change"
[ "$(awsx kms list-key-rotations --key-id "$KEY" --query 'Rotations[0].RotationType' --output text)" = ON_DEMAND ] || fail "list-key-rotations"
awsx kms decrypt --ciphertext-blob fileb://old.bin --output json >dec.json
[ "$(jq -r .KeyMaterialId dec.json)" = "$FIRST" ] || fail "decrypt names the old material"
[ "$(jq -r .Plaintext dec.json | base64 -d)" = 'made before the rotation' ] || fail "old plaintext"
awsx kms encrypt --key-id "$KEY" --plaintext fileb://old.txt --query CiphertextBlob --output text | base64 -d >new.bin
[ "$(awsx kms decrypt --ciphertext-blob fileb://new.bin --query KeyMaterialId --output text)" = "$SECOND" ] || fail "new ciphertexts use the new material"

step "enable automatic rotation"
awsx kms enable-key-rotation --key-id "$KEY" --rotation-period-in-days 90
[ "$(awsx kms get-key-rotation-status --key-id "$KEY" --query RotationPeriodInDays --output text)" = 90 ] || fail "rotation period"

step "BYOK: an EXTERNAL key waits for its material"
EXT=$(awsx kms create-key --origin EXTERNAL --description "byok" --query KeyMetadata.KeyId --output text)
[ "$(awsx kms describe-key --key-id "$EXT" --query KeyMetadata.KeyState --output text)" = PendingImport ] || fail "PendingImport"
expect_error KMSInvalidStateException awsx kms encrypt --key-id "$EXT" --plaintext fileb://old.txt

step "BYOK: RSAES_OAEP_SHA_256, wrapped with openssl pkeyutl (AWS's guide, step 3)"
# Step 2: download the wrapping public key and import token.
awsx kms get-parameters-for-import --key-id "$EXT" \
  --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_2048 >params.json
jq -r .PublicKey params.json | base64 --decode >WrappingPublicKey.bin
jq -r .ImportToken params.json | base64 --decode >ImportToken.bin
# Step 3: generate 256-bit key material and encrypt it.
openssl rand -out PlaintextKeyMaterial.bin 32
openssl pkeyutl \
    -encrypt \
    -in PlaintextKeyMaterial.bin \
    -out EncryptedKeyMaterial.bin \
    -inkey WrappingPublicKey.bin \
    -keyform DER \
    -pubin \
    -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256
# Step 4: import it.
awsx kms import-key-material --key-id "$EXT" \
    --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
    --import-token fileb://ImportToken.bin \
    --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >imported.json
MATERIAL=$(jq -r .KeyMaterialId imported.json)
[ "$(awsx kms describe-key --key-id "$EXT" --query KeyMetadata.KeyState --output text)" = Enabled ] || fail "Enabled after import"
roundtrip "$EXT" "bring your own key"
# The token is single-use.
expect_error InvalidImportTokenException awsx kms import-key-material --key-id "$EXT" \
    --encrypted-key-material fileb://EncryptedKeyMaterial.bin --import-token fileb://ImportToken.bin \
    --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE

step "BYOK: delete the material, ciphertexts wait, re-import the same material"
awsx kms encrypt --key-id "$EXT" --plaintext fileb://old.txt --query CiphertextBlob --output text | base64 -d >ext.bin
awsx kms delete-imported-key-material --key-id "$EXT" >/dev/null
[ "$(awsx kms describe-key --key-id "$EXT" --query KeyMetadata.KeyState --output text)" = PendingImport ] || fail "PendingImport after delete"
expect_error KMSInvalidStateException awsx kms decrypt --ciphertext-blob fileb://ext.bin
# Other material is refused.
awsx kms get-parameters-for-import --key-id "$EXT" \
  --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_2048 >params.json
jq -r .PublicKey params.json | base64 --decode >WrappingPublicKey.bin
jq -r .ImportToken params.json | base64 --decode >ImportToken.bin
openssl rand -out Other.bin 32
openssl pkeyutl -encrypt -in Other.bin -out OtherEncrypted.bin -inkey WrappingPublicKey.bin -keyform DER -pubin \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
expect_error IncorrectKeyMaterialException awsx kms import-key-material --key-id "$EXT" \
    --encrypted-key-material fileb://OtherEncrypted.bin --import-token fileb://ImportToken.bin \
    --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE
# The same material, with an expiry this time.
openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin -inkey WrappingPublicKey.bin \
    -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
VALID_TO=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
awsx kms import-key-material --key-id "$EXT" \
    --encrypted-key-material fileb://EncryptedKeyMaterial.bin --import-token fileb://ImportToken.bin \
    --expiration-model KEY_MATERIAL_EXPIRES --valid-to "$VALID_TO" >/dev/null
[ "$(awsx kms describe-key --key-id "$EXT" --query KeyMetadata.ExpirationModel --output text)" = KEY_MATERIAL_EXPIRES ] || fail "expiration model"
awsx kms decrypt --ciphertext-blob fileb://ext.bin --output json >dec.json
[ "$(jq -r .KeyMaterialId dec.json)" = "$MATERIAL" ] || fail "the same material id"
[ "$(jq -r .Plaintext dec.json | base64 -d)" = 'made before the rotation' ] || fail "decrypt after re-import"

step "BYOK: RSA_AES_KEY_WRAP_SHA_256 new material, then rotate on demand to it"
awsx kms get-parameters-for-import --key-id "$EXT" \
  --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 --wrapping-key-spec RSA_4096 >params.json
jq -r .PublicKey params.json | base64 --decode >WrappingPublicKey.der
jq -r .ImportToken params.json | base64 --decode >ImportToken.bin
openssl rand -out PlaintextKeyMaterial2.bin 32
openssl rand -out aes-key.bin 32
openssl enc -id-aes256-wrap-pad \
    -K "$(xxd -p < aes-key.bin | tr -d '\n')" \
    -iv A65959A6 \
    -in PlaintextKeyMaterial2.bin \
    -out key-material-wrapped.bin
openssl pkeyutl \
    -encrypt \
    -in aes-key.bin \
    -out aes-key-wrapped.bin \
    -inkey WrappingPublicKey.der \
    -keyform DER \
    -pubin \
    -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256
cat aes-key-wrapped.bin key-material-wrapped.bin > EncryptedKeyMaterial2.bin
awsx kms import-key-material --key-id "$EXT" --import-type NEW_KEY_MATERIAL \
    --encrypted-key-material fileb://EncryptedKeyMaterial2.bin --import-token fileb://ImportToken.bin \
    --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE --key-material-description "second material" >imported2.json
MATERIAL2=$(jq -r .KeyMaterialId imported2.json)
[ "$(awsx kms list-key-rotations --key-id "$EXT" --query "Rotations[?KeyMaterialId=='$MATERIAL2'].KeyMaterialState" --output text)" = PENDING_ROTATION ] || fail "pending rotation"
awsx kms rotate-key-on-demand --key-id "$EXT" >/dev/null
[ "$(awsx kms describe-key --key-id "$EXT" --query KeyMetadata.CurrentKeyMaterialId --output text)" = "$MATERIAL2" ] || fail "rotated to the new material"
roundtrip "$EXT" "after the rotation"
[ "$(awsx kms decrypt --ciphertext-blob fileb://ct.bin --query KeyMaterialId --output text)" = "$MATERIAL2" ] || fail "new ciphertexts use the new material"
[ "$(awsx kms decrypt --ciphertext-blob fileb://ext.bin --query Plaintext --output text | base64 -d)" = 'made before the rotation' ] || fail "old imported ciphertext"

step "last usage"
[ "$(awsx kms get-key-last-usage --key-id "$EXT" --query KeyLastUsage.Operation --output text)" = Decrypt ] || fail "get-key-last-usage"

echo "kms-lifecycle-cli: PASS"
