#!/usr/bin/env bash
# envelope_esdk_cli.sh — `keyhold envelope` and AWS's aws-encryption-sdk-cli (PyPI) read each
# other's messages, with data keys from a live Keyhold, for every suite family, through
# files and through pipes.
#   ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/envelope_esdk_cli.sh  (or via with-server.sh)
# KEYHOLD_BIN selects the keyhold binary (default: the debug build in CARGO_TARGET_DIR);
# ESDK_CLI selects aws-encryption-cli (default: $HOME/.cache/esdk-venv/bin/aws-encryption-cli).
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT}"
target_dir="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}"
KH="${KEYHOLD_BIN:-$target_dir/debug/keyhold}"
ESDK="${ESDK_CLI:-$HOME/.cache/esdk-venv/bin/aws-encryption-cli}"
[ -x "$ESDK" ] || { echo "envelope-esdk-cli: no aws-encryption-cli at $ESDK" >&2; exit 2; }
[ -x "$KH" ] || { echo "envelope-esdk-cli: no keyhold binary at $KH" >&2; exit 2; }

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
# botocore (the ESDK CLI) finds Keyhold through the standard per-service variable.
export AWS_ENDPOINT_URL_KMS="$ENDPOINT"
fail() { echo "envelope-esdk-cli: FAIL: $*" >&2; exit 1; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

KEY=$(aws --endpoint-url "$ENDPOINT" kms create-key --query KeyMetadata.Arn --output text)
: >"$T/p0"; printf x >"$T/p1"; head -c 4096 /dev/urandom >"$T/p4096"; head -c 300001 /dev/urandom >"$T/p300001"
# A multiple of keyhold's default 64 KiB frame: its last full frame must be a regular frame
# followed by an empty final frame (the Python ESDK refuses a full-length final frame).
head -c 131072 /dev/urandom >"$T/p131072"
for p in p0 p1 p4096 p300001 p131072; do
  for s in "" signed; do
    "$KH" envelope encrypt --key-id "$KEY" --context purpose=interop ${s:+--signed} \
      "$T/$p" "$T/$p.kh$s"
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
    "$KH" envelope decrypt --key-id "$KEY" --context team=core "$T/$p.esdk" "$T/$p.esdk.out"
    cmp "$T/$p" "$T/$p.esdk.out" || fail "esdk -> keyhold $p [$v]"
    echo "envelope-esdk-cli: esdk -> keyhold $p [$v] ok"
  done
done
# Pipes both ways: keyhold's stdout into the ESDK CLI's stdin, and the reverse.
"$KH" envelope encrypt --key-id "$KEY" --context via=pipe <"$T/p300001" |
  "$ESDK" -S --decrypt --input - --output - --wrapping-keys key="$KEY" --encryption-context via=pipe >"$T/pipe1"
cmp "$T/p300001" "$T/pipe1" || fail "keyhold -> esdk through a pipe"
"$ESDK" -S --encrypt --input - --output - --wrapping-keys key="$KEY" --encryption-context via=pipe \
  --commitment-policy require-encrypt-require-decrypt <"$T/p300001" |
  "$KH" envelope decrypt --key-id "$KEY" --context via=pipe >"$T/pipe2"
cmp "$T/p300001" "$T/pipe2" || fail "esdk -> keyhold through a pipe"
echo "envelope-esdk-cli: pipes both ways ok"
# A wrong expected context is refused with exit code 5, and no output file appears.
set +e
"$KH" envelope decrypt --key-id "$KEY" --context team=other "$T/p1.esdk" "$T/x" 2>/dev/null
code=$?
set -e
[ "$code" = 5 ] || fail "context mismatch: exit $code, expected 5"
[ ! -e "$T/x" ] || fail "context mismatch left an output file"
echo "envelope-esdk-cli: PASS"
