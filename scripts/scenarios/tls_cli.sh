#!/usr/bin/env bash
# tls_cli.sh — the real `aws` CLI over HTTPS against `keyhold serve --tls-self-signed`,
# trusting the generated CA through AWS_CA_BUNDLE; then a certificate swap + SIGHUP.
# Runs on its own (it starts its own server): bash scripts/scenarios/tls_cli.sh
# KEYHOLD_BIN selects the binary (default: the debug build in CARGO_TARGET_DIR).
set -euo pipefail

target_dir="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}"
bin="${KEYHOLD_BIN:-$target_dir/debug/keyhold}"
[ -x "$bin" ] || { echo "tls_cli: no keyhold binary at $bin (cargo build -p keyhold)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/keyhold-tls.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --tls-self-signed \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ca=""
for _ in $(seq 1 100); do
  ca="$(sed -n 's/^Trust it with:  export AWS_CA_BUNDLE=//p' "$work/stdout")"
  if [ -n "$ca" ] && curl -fsS --cacert "$ca" "https://localhost:$port/_keyhold/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "tls_cli: keyhold exited:" >&2; cat "$work/stderr" >&2; exit 2; fi
  sleep 0.1
done
[ -n "$ca" ] || { echo "tls_cli: no AWS_CA_BUNDLE line in the output" >&2; exit 1; }
grep -q '^  CA SHA-256: ' "$work/stdout" || { echo "tls_cli: no fingerprint printed" >&2; exit 1; }

export AWS_CA_BUNDLE="$ca" AWS_ACCESS_KEY_ID=000000000000 AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1
endpoint="https://localhost:$port"
key_id="$(aws --endpoint-url "$endpoint" kms create-key --query KeyMetadata.KeyId --output text)"
printf 'over tls' >"$work/plain.txt"
aws --endpoint-url "$endpoint" kms encrypt --key-id "$key_id" --plaintext "fileb://$work/plain.txt" \
  --query CiphertextBlob --output text | base64 -d >"$work/ct.bin"
plain="$(aws --endpoint-url "$endpoint" kms decrypt --ciphertext-blob "fileb://$work/ct.bin" --query Plaintext --output text | base64 -d)"
[ "$plain" = "over tls" ] || { echo "tls_cli: decrypt gave '$plain'" >&2; exit 1; }
aws --endpoint-url "$endpoint" secretsmanager create-secret --name tls-cli --secret-string v >/dev/null

# Without the CA bundle the CLI refuses the certificate.
if env -u AWS_CA_BUNDLE aws --endpoint-url "$endpoint" kms list-keys >/dev/null 2>&1; then
  echo "tls_cli: the CLI accepted the certificate without the CA bundle" >&2; exit 1
fi

# Swap in a new CA and certificate, SIGHUP: new connections get the new certificate.
mkdir -p "$work/new"
cp "$work/data/tls/ca.pem" "$work/old-ca.pem"
"$bin" serve --data-dir "$work/new" --listen 127.0.0.1:0 --tls-self-signed >"$work/new.out" 2>&1 &
newpid=$!
for _ in $(seq 1 100); do [ -s "$work/new/tls/server.key" ] && break; sleep 0.1; done
kill "$newpid"; wait "$newpid" 2>/dev/null || true
cp "$work/new/tls/server.pem" "$work/data/tls/server.pem"
cp "$work/new/tls/server.key" "$work/data/tls/server.key"
kill -HUP "$pid"
sleep 0.5
AWS_CA_BUNDLE="$work/new/tls/ca.pem" aws --endpoint-url "$endpoint" kms list-keys >/dev/null
if AWS_CA_BUNDLE="$work/old-ca.pem" aws --endpoint-url "$endpoint" kms list-keys >/dev/null 2>&1; then
  echo "tls_cli: the old certificate is still served after SIGHUP" >&2; exit 1
fi
kill -0 "$pid" || { echo "tls_cli: the server died on SIGHUP" >&2; exit 1; }
echo "tls_cli: ok"
