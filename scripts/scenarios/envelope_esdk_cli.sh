#!/usr/bin/env bash
# envelope_esdk_cli.sh — keyhold-envelope and AWS's aws-encryption-sdk-cli (PyPI) read each
# other's messages, with data keys from a live Keyhold, for every suite family.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/envelope_esdk_cli.sh  (or via with-server.sh)
# Uses the library through its example (cargo build -p keyhold-envelope --example envelope_file);
# ESDK_CLI selects aws-encryption-cli (default: $HOME/.cache/esdk-venv/bin/aws-encryption-cli).
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"
target_dir="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}"
EX="${ENVELOPE_EXAMPLE:-$target_dir/debug/examples/envelope_file}"
ESDK="${ESDK_CLI:-$HOME/.cache/esdk-venv/bin/aws-encryption-cli}"
[ -x "$ESDK" ] || { echo "envelope-esdk-cli: no aws-encryption-cli at $ESDK" >&2; exit 2; }
[ -x "$EX" ] || { echo "envelope-esdk-cli: no example binary at $EX" >&2; exit 2; }

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
# botocore (the ESDK CLI) finds Keyhold through the standard per-service variable.
export AWS_ENDPOINT_URL_KMS="$ENDPOINT" KMS_ENDPOINT="$ENDPOINT"
fail() { echo "envelope-esdk-cli: FAIL: $*" >&2; exit 1; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

KEY=$(aws --endpoint-url "$ENDPOINT" kms create-key --query KeyMetadata.Arn --output text)
: >"$T/p0"; printf x >"$T/p1"; head -c 4096 /dev/urandom >"$T/p4096"; head -c 300001 /dev/urandom >"$T/p300001"
for p in p0 p1 p4096 p300001; do
  for s in "" signed; do
    "$EX" encrypt "$KEY" "$T/$p" "$T/$p.kh$s" $s purpose=interop
    "$ESDK" -S --decrypt --input "$T/$p.kh$s" --output "$T/$p.kh$s.out" --wrapping-keys key="$KEY" \
      --encryption-context purpose=interop
    cmp "$T/$p" "$T/$p.kh$s.out" || fail "keyhold -> esdk $p ${s:-unsigned}"
    echo "envelope-esdk-cli: keyhold -> esdk $p ${s:-unsigned} ok"
  done
  for v in "--commitment-policy require-encrypt-require-decrypt" \
    "--commitment-policy require-encrypt-require-decrypt --algorithm AES_256_GCM_HKDF_SHA512_COMMIT_KEY" \
    "--commitment-policy forbid-encrypt-allow-decrypt" \
    "--commitment-policy forbid-encrypt-allow-decrypt --algorithm AES_256_GCM_IV12_TAG16_HKDF_SHA256"; do
    rm -f "$T/$p.esdk"
    # shellcheck disable=SC2086
    "$ESDK" -S --encrypt --input "$T/$p" --output "$T/$p.esdk" --wrapping-keys key="$KEY" \
      --encryption-context team=core --frame-length 4096 $v
    "$EX" decrypt "$KEY" "$T/$p.esdk" "$T/$p.esdk.out" team=core
    cmp "$T/$p" "$T/$p.esdk.out" || fail "esdk -> keyhold $p [$v]"
    echo "envelope-esdk-cli: esdk -> keyhold $p [$v] ok"
  done
done
# A wrong expected context is refused.
if "$EX" decrypt "$KEY" "$T/p1.esdk" "$T/x" team=other 2>/dev/null; then fail "context mismatch accepted"; fi
echo "envelope-esdk-cli: PASS"
