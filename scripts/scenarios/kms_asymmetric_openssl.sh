#!/usr/bin/env bash
# kms_asymmetric_openssl.sh — asymmetric KMS keys against the `openssl` CLI, through the
# real `aws` CLI: what KMS signs, openssl verifies with the DER public key from
# GetPublicKey (every RSA, ECC and Ed25519 algorithm, RAW and DIGEST); what openssl
# encrypts with that public key (RSAES-OAEP SHA-1 and SHA-256), KMS decrypts;
# DeriveSharedSecret equals `openssl pkeyutl -derive`; a data key pair's private key signs
# what its public key verifies.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/kms_asymmetric_openssl.sh
#   (or via scripts/with-server.sh). Prints "kms-openssl: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
awsx() { aws --endpoint-url "$ENDPOINT" "$@"; }

STEP=start
fail() { echo "kms-openssl: FAIL at '$STEP': $*" >&2; exit 1; }
step() { STEP="$1"; echo "kms-openssl: $1"; }
TMPD=$(mktemp -d); trap 'rm -rf "$TMPD"' EXIT
printf 'release v1.2.3, sha256 of the tarball: 9f86d081884c7d65' >"$TMPD/msg.bin"

# new_key SPEC USAGE -> key id; its public key in $TMPD/ID.der and $TMPD/ID.pem
new_key() {
  local id
  id=$(awsx kms create-key --key-spec "$1" --key-usage "$2" --query KeyMetadata.KeyId --output text)
  awsx kms get-public-key --key-id "$id" --query PublicKey --output text | base64 -d >"$TMPD/$id.der"
  openssl pkey -pubin -inform DER -in "$TMPD/$id.der" -out "$TMPD/$id.pem" 2>/dev/null \
    || fail "openssl does not read the DER public key of $1"
  echo "$id"
}

# kms_sign KEY ALG [MESSAGE-TYPE] FILE -> signature in $TMPD/sig.bin
kms_sign() {
  awsx kms sign --key-id "$1" --signing-algorithm "$2" --message-type "$3" \
    --message "fileb://$4" --query Signature --output text | base64 -d >"$TMPD/sig.bin"
}

# openssl_verify PEM ALG — verifies $TMPD/sig.bin over $TMPD/msg.bin the way ALG says
openssl_verify() {
  local pem=$1 alg=$2 md
  case "$alg" in
    *SHA_256) md=sha256 ;; *SHA_384) md=sha384 ;; *SHA_512) md=sha512 ;;
  esac
  case "$alg" in
    RSASSA_PSS_*)
      openssl dgst "-$md" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
        -verify "$pem" -signature "$TMPD/sig.bin" "$TMPD/msg.bin" >/dev/null ;;
    ED25519_SHA_512)
      openssl pkeyutl -verify -pubin -inkey "$pem" -rawin -in "$TMPD/msg.bin" \
        -sigfile "$TMPD/sig.bin" >/dev/null ;;
    *)
      openssl dgst "-$md" -verify "$pem" -signature "$TMPD/sig.bin" "$TMPD/msg.bin" >/dev/null ;;
  esac
}

for pair in "RSA_2048:RSASSA_PSS_SHA_256 RSASSA_PSS_SHA_384 RSASSA_PSS_SHA_512 RSASSA_PKCS1_V1_5_SHA_256 RSASSA_PKCS1_V1_5_SHA_384 RSASSA_PKCS1_V1_5_SHA_512" \
            "RSA_3072:RSASSA_PSS_SHA_256 RSASSA_PKCS1_V1_5_SHA_384" \
            "RSA_4096:RSASSA_PSS_SHA_512 RSASSA_PKCS1_V1_5_SHA_256" \
            "ECC_NIST_P256:ECDSA_SHA_256" "ECC_NIST_P384:ECDSA_SHA_384" "ECC_NIST_P521:ECDSA_SHA_512" \
            "ECC_SECG_P256K1:ECDSA_SHA_256" "ECC_NIST_EDWARDS25519:ED25519_SHA_512"; do
  spec=${pair%%:*}
  step "sign with $spec, verify with openssl"
  key=$(new_key "$spec" SIGN_VERIFY)
  for alg in ${pair#*:}; do
    kms_sign "$key" "$alg" RAW "$TMPD/msg.bin"
    openssl_verify "$TMPD/$key.pem" "$alg" || fail "$alg signature (RAW) does not verify with openssl"
    # The verify answer is valid, and a changed message is KMSInvalidSignatureException.
    [ "$(awsx kms verify --key-id "$key" --signing-algorithm "$alg" --message "fileb://$TMPD/msg.bin" \
        --signature "fileb://$TMPD/sig.bin" --query SignatureValid --output text)" = True ] || fail "$alg verify"
    printf 'tampered' >"$TMPD/other.bin"
    if out=$(awsx kms verify --key-id "$key" --signing-algorithm "$alg" --message "fileb://$TMPD/other.bin" \
        --signature "fileb://$TMPD/sig.bin" 2>&1); then fail "$alg: a tampered message verified: $out"; fi
    grep -q KMSInvalidSignatureException <<<"$out" || fail "$alg: $out"
    if [ "$alg" != ED25519_SHA_512 ]; then
      # DIGEST: openssl hashes, KMS signs the digest; openssl verifies the message.
      md=$(case "$alg" in *256) echo sha256 ;; *384) echo sha384 ;; *) echo sha512 ;; esac)
      openssl dgst "-$md" -binary "$TMPD/msg.bin" >"$TMPD/digest.bin"
      kms_sign "$key" "$alg" DIGEST "$TMPD/digest.bin"
      openssl_verify "$TMPD/$key.pem" "$alg" || fail "$alg signature (DIGEST) does not verify with openssl"
    fi
  done
done

step "openssl encrypts with the public key (RSAES-OAEP), KMS decrypts"
for spec in RSA_2048 RSA_3072 RSA_4096; do
  key=$(new_key "$spec" ENCRYPT_DECRYPT)
  printf 'data key for an offline client' >"$TMPD/plain.bin"
  for alg in RSAES_OAEP_SHA_1 RSAES_OAEP_SHA_256; do
    md=$([ "$alg" = RSAES_OAEP_SHA_1 ] && echo sha1 || echo sha256)
    openssl pkeyutl -encrypt -pubin -inkey "$TMPD/$key.pem" -in "$TMPD/plain.bin" -out "$TMPD/ct.bin" \
      -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md"
    awsx kms decrypt --key-id "$key" --encryption-algorithm "$alg" --ciphertext-blob "fileb://$TMPD/ct.bin" \
      --query Plaintext --output text | base64 -d >"$TMPD/back.bin"
    cmp -s "$TMPD/plain.bin" "$TMPD/back.bin" || fail "$spec $alg: KMS did not decrypt what openssl encrypted"
  done
done

step "DeriveSharedSecret equals openssl's ECDH"
for curve in "ECC_NIST_P256:P-256" "ECC_NIST_P384:P-384" "ECC_NIST_P521:P-521"; do
  spec=${curve%%:*}
  key=$(new_key "$spec" KEY_AGREEMENT)
  openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:${curve#*:}" -out "$TMPD/peer.pem" 2>/dev/null
  openssl pkey -in "$TMPD/peer.pem" -pubout -outform DER -out "$TMPD/peer_pub.der"
  awsx kms derive-shared-secret --key-id "$key" --key-agreement-algorithm ECDH \
    --public-key "fileb://$TMPD/peer_pub.der" --query SharedSecret --output text | base64 -d >"$TMPD/kms_secret.bin"
  openssl pkeyutl -derive -inkey "$TMPD/peer.pem" -peerkey "$TMPD/$key.pem" -out "$TMPD/ossl_secret.bin"
  cmp -s "$TMPD/kms_secret.bin" "$TMPD/ossl_secret.bin" || fail "$spec: the shared secrets differ"
done

step "a data key pair's private key signs what its public key verifies"
WRAP=$(awsx kms create-key --query KeyMetadata.KeyId --output text)
for spec in RSA_2048 ECC_NIST_P256 ECC_NIST_P384 ECC_SECG_P256K1 ECC_NIST_EDWARDS25519; do
  awsx kms generate-data-key-pair --key-id "$WRAP" --key-pair-spec "$spec" --encryption-context use=pair >"$TMPD/pair.json"
  jq -r .PrivateKeyPlaintext "$TMPD/pair.json" | base64 -d >"$TMPD/priv.der"
  jq -r .PublicKey "$TMPD/pair.json" | base64 -d >"$TMPD/pub.der"
  jq -r .PrivateKeyCiphertextBlob "$TMPD/pair.json" | base64 -d >"$TMPD/priv.ct"
  openssl pkey -inform DER -in "$TMPD/priv.der" -out "$TMPD/priv.pem" || fail "$spec: the private key is not PKCS#8 DER"
  openssl pkey -pubin -inform DER -in "$TMPD/pub.der" -out "$TMPD/pub.pem" || fail "$spec: the public key is not SPKI DER"
  if [ "$spec" = ECC_NIST_EDWARDS25519 ]; then
    openssl pkeyutl -sign -inkey "$TMPD/priv.pem" -rawin -in "$TMPD/msg.bin" -out "$TMPD/sig.bin"
    openssl_verify "$TMPD/pub.pem" ED25519_SHA_512 || fail "$spec data key pair"
  else
    openssl dgst -sha256 -sign "$TMPD/priv.pem" -out "$TMPD/sig.bin" "$TMPD/msg.bin"
    openssl_verify "$TMPD/pub.pem" ECDSA_SHA_256 || fail "$spec data key pair"
  fi
  # The encrypted private key is an ordinary symmetric ciphertext of the same bytes.
  awsx kms decrypt --ciphertext-blob "fileb://$TMPD/priv.ct" --encryption-context use=pair \
    --query Plaintext --output text | base64 -d >"$TMPD/priv2.der"
  cmp -s "$TMPD/priv.der" "$TMPD/priv2.der" || fail "$spec: the encrypted private key differs"
done

echo "kms-openssl: PASS"
