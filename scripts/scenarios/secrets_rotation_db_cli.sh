#!/usr/bin/env bash
# secrets_rotation_db_cli.sh - real MariaDB and PostgreSQL credentials rotated by Keyhold's
# built-in rotators through `aws secretsmanager rotate-secret`.
#
#   KEYHOLD_CONFIG=scripts/scenarios/rotation_db_dev.toml \
#     scripts/with-server.sh bash scripts/scenarios/secrets_rotation_db_cli.sh
#
# Needs MariaDB (or MySQL) on 127.0.0.1:3306 with root and an empty password (.ci/run starts
# it). Creates a user per run, rotates it single-user (the new password logs in, the old one
# does not), then a second user alternating (AWSPREVIOUS keeps working), and drops both.
# Then a PostgreSQL role (127.0.0.1:5432, user postgres, database test) single-user: every
# local PostgreSQL connection here is `trust`, so a login proves nothing; the role's stored
# SCRAM-SHA-256 verifier is checked instead (it verifies the new password, not the old).
# Prints "secrets-rotation-db-cli: PASS" at the end.
set -euo pipefail
: "${ENDPOINT:?set ENDPOINT, e.g. ENDPOINT=http://127.0.0.1:4566}"
export AWS_ACCESS_KEY_ID=000000000000 AWS_SECRET_ACCESS_KEY=dev-mode-secret AWS_DEFAULT_REGION=us-east-1
sm() { aws --endpoint-url "$ENDPOINT" secretsmanager "$@"; }
fail() { echo "secrets-rotation-db-cli: FAIL: $*" >&2; exit 1; }
root() { mysql -h 127.0.0.1 -P 3306 -u root "$@"; }
logs_in() { mysql -h 127.0.0.1 -P 3306 -u "$1" --password="$2" -e 'SELECT NOW()' >/dev/null 2>&1; }
single=arn:aws:lambda:us-east-1:000000000000:function:mysql-single-user
alternating=arn:aws:lambda:us-east-1:000000000000:function:mysql-alternating-users
pg_single=arn:aws:lambda:us-east-1:000000000000:function:postgres-single-user
pg() { psql -h 127.0.0.1 -U postgres -d test -tAc "$1"; }
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
user="cs$suffix"
alt="ca$suffix"
pguser="ps$suffix"
names=()
cleanup() {
  for n in "${names[@]}"; do sm delete-secret --secret-id "$n" --force-delete-without-recovery >/dev/null 2>&1 || true; done
  root -e "DROP USER IF EXISTS '$user'@'%', '$alt'@'%', '${alt}_clone'@'%'" >/dev/null 2>&1 || true
  pg "DROP ROLE IF EXISTS $pguser" >/dev/null 2>&1 || true
}
# Whether PostgreSQL's SCRAM-SHA-256 verifier $1 was made from password $2.
scram_ok() {
  python3 - "$1" "$2" <<'PY'
import base64, hashlib, hmac, sys
verifier, password = sys.argv[1], sys.argv[2]
method, rest = verifier.split("$", 1)
params, keys = rest.split("$", 1)
iterations, salt = params.split(":", 1)
stored_key = base64.b64decode(keys.split(":", 1)[0])
salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
sys.exit(0 if method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == stored_key else 1)
PY
}
trap cleanup EXIT

# Waits until version $2 of secret $1 is AWSCURRENT.
wait_current() {
  for _ in $(seq 1 300); do
    [ "$(sm get-secret-value --secret-id "$1" --query VersionId --output text)" = "$2" ] && return 0
    sleep 0.2
  done
  fail "version $2 of $1 never became AWSCURRENT"
}
field() { sm get-secret-value --secret-id "$1" --version-stage "$2" --query SecretString --output text | jq -r ".$3"; }

echo "secrets-rotation-db-cli: single user"
root -e "CREATE USER '$user'@'%' IDENTIFIED BY 'initial-Password-1'"
logs_in "$user" initial-Password-1 || fail "the new user does not log in"
name="scenario/db-single-$suffix"; names+=("$name")
sm create-secret --name "$name" --secret-string "$(jq -cn --arg u "$user" \
  '{engine:"mysql",host:"127.0.0.1",port:3306,username:$u,password:"initial-Password-1"}')" >/dev/null
token=$(sm rotate-secret --secret-id "$name" --rotation-lambda-arn "$single" \
  --rotation-rules AutomaticallyAfterDays=30 --query VersionId --output text)
wait_current "$name" "$token"
new=$(field "$name" AWSCURRENT password)
[ "${#new}" = 32 ] || fail "the new password is not GetRandomPassword's 32 characters"
logs_in "$user" "$new" || fail "the new password does not log in"
if logs_in "$user" initial-Password-1; then fail "the old password still logs in"; fi
[ "$(field "$name" AWSPREVIOUS password)" = initial-Password-1 ] || fail "AWSPREVIOUS is not the old value"
[ "$(sm describe-secret --secret-id "$name" --query LastRotatedDate --output text)" != None ] \
  || fail "no LastRotatedDate"

echo "secrets-rotation-db-cli: alternating users"
root -e "CREATE USER '$alt'@'%' IDENTIFIED BY 'initial-Password-2'; GRANT SELECT ON test.* TO '$alt'@'%'"
master="scenario/db-master-$suffix"; names+=("$master")
master_arn=$(sm create-secret --name "$master" --secret-string \
  '{"engine":"mysql","host":"127.0.0.1","port":3306,"username":"root","password":""}' --query ARN --output text)
name="scenario/db-alternating-$suffix"; names+=("$name")
sm create-secret --name "$name" --secret-string "$(jq -cn --arg u "$alt" --arg m "$master_arn" \
  '{engine:"mysql",host:"127.0.0.1",port:3306,username:$u,password:"initial-Password-2",masterarn:$m}')" >/dev/null
token=$(sm rotate-secret --secret-id "$name" --rotation-lambda-arn "$alternating" --query VersionId --output text)
wait_current "$name" "$token"
[ "$(field "$name" AWSCURRENT username)" = "${alt}_clone" ] || fail "AWSCURRENT is not the clone"
logs_in "${alt}_clone" "$(field "$name" AWSCURRENT password)" || fail "the clone does not log in"
[ "$(field "$name" AWSPREVIOUS username)" = "$alt" ] || fail "AWSPREVIOUS is not the original user"
logs_in "$alt" "$(field "$name" AWSPREVIOUS password)" || fail "AWSPREVIOUS no longer logs in"
root -e "SHOW GRANTS FOR '${alt}_clone'@'%'" | grep -q 'SELECT ON `test`' || fail "the clone lacks the user's grants"

echo "secrets-rotation-db-cli: PostgreSQL single user"
pg "CREATE ROLE $pguser LOGIN PASSWORD 'initial-Password-3'" >/dev/null
name="scenario/pg-single-$suffix"; names+=("$name")
sm create-secret --name "$name" --secret-string "$(jq -cn --arg u "$pguser" \
  '{engine:"postgres",host:"127.0.0.1",port:5432,username:$u,password:"initial-Password-3",dbname:"test"}')" >/dev/null
token=$(sm rotate-secret --secret-id "$name" --rotation-lambda-arn "$pg_single" --query VersionId --output text)
wait_current "$name" "$token"
new=$(field "$name" AWSCURRENT password)
verifier=$(pg "SELECT rolpassword FROM pg_authid WHERE rolname = '$pguser'")
scram_ok "$verifier" "$new" || fail "the role's verifier is not the new password's"
if scram_ok "$verifier" initial-Password-3; then fail "the role's verifier is still the old password's"; fi
[ "$(field "$name" AWSPREVIOUS password)" = initial-Password-3 ] || fail "AWSPREVIOUS is not the old value"

echo "secrets-rotation-db-cli: PASS"
