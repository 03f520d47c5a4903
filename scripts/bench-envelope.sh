#!/usr/bin/env bash
# bench-envelope.sh — time `keyhold envelope encrypt|decrypt` of one large file (1 GiB by
# default) against a live dev-mode Keyhold, next to AWS's aws-encryption-cli on the same
# file with the same key, suite and frame length, and next to raw in-memory AES-256-GCM on
# this machine (aws-lc-rs through criterion, and `openssl speed`). Not run in CI.
#
#   cargo build --release --workspace --bin keyhold
#   scripts/bench-envelope.sh            # starts its own release server (with-server.sh)
#
# Environment: KEYHOLD_BIN (default: the release build in CARGO_TARGET_DIR), ESDK_CLI
# (default: $HOME/.cache/esdk-venv/bin/aws-encryption-cli), SIZE_MIB (1024), RUNS (3),
# FRAME (65536), BENCH_DIR (default /dev/shm when it exists, so the figures are the tools'
# and not the disk's; the files are deleted on exit), RAW=0 skips the criterion raw run,
# EXAMPLE_BIN=path also times the library's examples/envelope_file (built with
# `cargo build --release -p keyhold-envelope --example envelope_file`; no fsync, no
# temporary file) and KEYHOLD_CLI=0 leaves out the `keyhold envelope` runs (e.g. when only
# a debug build of keyhold exists to serve KMS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target_dir="${CARGO_TARGET_DIR:-$here/../target}"
export KEYHOLD_BIN="${KEYHOLD_BIN:-$target_dir/release/keyhold}"
if [ -z "${ENDPOINT:-}" ]; then
  exec "$here/with-server.sh" "$0" "$@"
fi
KH="$KEYHOLD_BIN"
ESDK="${ESDK_CLI:-$HOME/.cache/esdk-venv/bin/aws-encryption-cli}"
SIZE_MIB="${SIZE_MIB:-1024}"
RUNS="${RUNS:-3}"
FRAME="${FRAME:-65536}"
[ -d /dev/shm ] && default_dir=/dev/shm || default_dir="${TMPDIR:-/tmp}"
BENCH_DIR="${BENCH_DIR:-$default_dir}"
[ -x "$KH" ] || { echo "bench-envelope: no keyhold binary at $KH" >&2; exit 2; }
[ -x "$ESDK" ] || { echo "bench-envelope: no aws-encryption-cli at $ESDK" >&2; exit 2; }

export AWS_ACCESS_KEY_ID=111122223333 AWS_SECRET_ACCESS_KEY=dev-secret AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true
export AWS_ENDPOINT_URL_KMS="$ENDPOINT"
T="$(mktemp -d "$BENCH_DIR/keyhold-bench-envelope.XXXXXX")"
trap 'rm -rf "$T"' EXIT

KEY=$(aws --endpoint-url "$ENDPOINT" kms create-key --query KeyMetadata.Arn --output text)
bytes=$((SIZE_MIB * 1024 * 1024))
head -c "$bytes" /dev/urandom >"$T/plain"
echo "bench-envelope: $SIZE_MIB MiB in $BENCH_DIR, frame $FRAME, $RUNS runs, $(nproc) cores; load: $(uptime)"

# Seconds taken by a command (its output discarded), as a decimal.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
# "min–max s (best GB/s)" of RUNS runs of a command.
timed() {
  local name="$1" best="" worst="" t
  shift
  for _ in $(seq 1 "$RUNS"); do
    rm -f "$T/out"
    t=$(seconds "$@")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    if [ -z "$worst" ] || [ "$(echo "$t > $worst" | bc -l)" = 1 ]; then worst=$t; fi
  done
  printf '%-44s %6.2f–%6.2f s  %6.0f MB/s (best)\n' "$name" "$best" "$worst" \
    "$(echo "$bytes / $best / 1000000" | bc -l)"
  eval "best_$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)=$best"
}

suite=AES_256_GCM_HKDF_SHA512_COMMIT_KEY
kh_enc=("$KH" envelope encrypt --key-id "$KEY" --context bench=envelope --frame-length "$FRAME" --progress never "$T/plain" "$T/out")
esdk_enc=("$ESDK" -S --encrypt --input "$T/plain" --output "$T/out" --wrapping-keys key="$KEY"
  --encryption-context bench=envelope --frame-length "$FRAME" --algorithm "$suite"
  --commitment-policy require-encrypt-require-decrypt)

# Each tool's message, kept for the decryption runs; each decrypts with the other tool.
"${kh_enc[@]}" && mv "$T/out" "$T/kh.msg"
"${esdk_enc[@]}" && mv "$T/out" "$T/esdk.msg"
"$ESDK" -S --decrypt --input "$T/kh.msg" --output "$T/check" --wrapping-keys key="$KEY" \
  --encryption-context bench=envelope --commitment-policy require-encrypt-require-decrypt
cmp "$T/plain" "$T/check" || { echo "bench-envelope: keyhold -> esdk round trip FAILED" >&2; exit 1; }
"$KH" envelope decrypt --key-id "$KEY" --context bench=envelope --progress never "$T/esdk.msg" "$T/check"
cmp "$T/plain" "$T/check" || { echo "bench-envelope: esdk -> keyhold round trip FAILED" >&2; exit 1; }
rm -f "$T/check"
echo "bench-envelope: both messages decrypt with the other tool"

if [ "${KEYHOLD_CLI:-1}" != 0 ]; then
  timed "keyhold envelope encrypt" "${kh_enc[@]}"
fi
if [ -n "${EXAMPLE_BIN:-}" ]; then
  # shellcheck disable=SC2054
  ex=(env KMS_ENDPOINT="$ENDPOINT" "$EXAMPLE_BIN")
  timed "envelope_file example encrypt" "${ex[@]}" encrypt "$KEY" "$T/plain" "$T/out" bench=envelope
  "${ex[@]}" encrypt "$KEY" "$T/plain" "$T/ex.msg" bench=envelope
  "$ESDK" -S --decrypt --input "$T/ex.msg" --output "$T/check" --wrapping-keys key="$KEY" \
    --encryption-context bench=envelope --commitment-policy require-encrypt-require-decrypt
  cmp "$T/plain" "$T/check" || { echo "bench-envelope: example -> esdk round trip FAILED" >&2; exit 1; }
  rm -f "$T/check" "$T/ex.msg"
fi
timed "aws-encryption-cli encrypt" "${esdk_enc[@]}"
if [ "${KEYHOLD_CLI:-1}" != 0 ]; then
  timed "keyhold envelope decrypt (its own message)" \
    "$KH" envelope decrypt --key-id "$KEY" --context bench=envelope --progress never "$T/kh.msg" "$T/out"
fi
if [ -n "${EXAMPLE_BIN:-}" ]; then
  timed "envelope_file example decrypt (keyhold's message)" "${ex[@]}" decrypt "$KEY" "$T/kh.msg" "$T/out" bench=envelope
fi
timed "aws-encryption-cli decrypt (its own message)" \
  "$ESDK" -S --decrypt --input "$T/esdk.msg" --output "$T/out" --wrapping-keys key="$KEY" \
  --encryption-context bench=envelope --commitment-policy require-encrypt-require-decrypt
timed "cp (the file copy alone)" cp "$T/plain" "$T/out"

# Raw in-memory AES-256-GCM on this machine.
openssl_bps=$(openssl speed -evp aes-256-gcm -bytes "$FRAME" -seconds 3 2>/dev/null |
  awk 'tolower($1) == "aes-256-gcm" { v=$NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }')
printf '%-44s %22.0f MB/s\n' "openssl speed aes-256-gcm ($FRAME B)" "$(echo "$openssl_bps / 1000000" | bc -l)"
raw_bps=""
if [ "${RAW:-1}" != 0 ]; then
  # Criterion's raw aws-lc-rs figure (in place, 64 MiB in 64 KiB chunks): the library the
  # envelope itself uses. Median throughput in GiB/s or MiB/s.
  line=$(cd "$here/.." && cargo bench -q -p keyhold-envelope --bench throughput -- \
    '64MiB_64KiB_frames/encrypt/raw_aes_256_gcm_in_place' --warm-up-time 1 --measurement-time 3 2>/dev/null |
    grep -A2 'raw_aes_256_gcm_in_place' | grep 'thrpt' | head -1)
  raw_bps=$(echo "$line" | awk '{ v=$(NF-3); u=$(NF-2); m = (u ~ /GiB/) ? 1073741824 : 1048576; print v * m }')
  printf '%-44s %22.0f MB/s\n' "aws-lc-rs AES-256-GCM in place (criterion)" "$(echo "$raw_bps / 1000000" | bc -l)"
fi

# Best encryption throughput of each tool as a fraction of each raw figure.
for tool in keyhold_envelope_encrypt envelope_file_example_encrypt aws_encryption_cli_encrypt cp__the_file_copy_alone_; do
  best_var="best_$tool"
  [ -n "${!best_var:-}" ] || continue
  bps=$(echo "$bytes / ${!best_var}" | bc -l)
  for name in openssl raw; do
    ref_var="${name}_bps"
    [ -n "${!ref_var}" ] || continue
    printf '%-34s %5.1f%% of %s\n' "$tool" "$(echo "100 * $bps / ${!ref_var}" | bc -l)" "$name"
  done
done
