#!/usr/bin/env python3
"""secrets_rotation_boto3.py - a Secrets Manager rotation done by hand, with boto3.

    ENDPOINT=http://127.0.0.1:4566 scripts/scenarios/secrets_rotation_boto3.py
    scripts/with-server.sh scripts/scenarios/secrets_rotation_boto3.py

The version/label dance of the four rotation steps, as a rotation function performs it:
createSecret (PutSecretValue with AWSPENDING, retried with the same token), setSecret and
testSecret (read AWSPENDING), finishSecret (UpdateSecretVersionStage moving AWSCURRENT, which
moves AWSPREVIOUS along), then cleanup of AWSPENDING. Also checks that RotateSecret refuses to
rotate now with a function the server has no [[rotation_functions]] entry for (AWS's answer for
a function it cannot invoke) but stores a schedule. Rotations that run a function:
secrets_rotation_cli.sh.

Exits non-zero at the first failed check; prints "secrets-rotation-boto3: PASS" at the end.
"""

import json
import os
import sys
import uuid

import boto3
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("ENDPOINT") or (sys.argv[1] if len(sys.argv) > 1 else None)
if not ENDPOINT:
    sys.exit("set ENDPOINT, e.g. ENDPOINT=http://127.0.0.1:4566")

STEP = "start"


def step(name):
    global STEP
    STEP = name
    print(f"secrets-rotation-boto3: {name}")


def check(condition, message):
    if not condition:
        sys.exit(f"secrets-rotation-boto3: FAIL at '{STEP}': {message}")


def error_code(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    check(False, f"{call.__name__} should have failed")
    return None, None


sm = boto3.client(
    "secretsmanager",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="000000000000",
    aws_secret_access_key="dev-mode-secret",
)
name = f"scenario/rotation-{uuid.uuid4().hex[:8]}"


def stages():
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in versions}


def value(**selector):
    return json.loads(sm.get_secret_value(SecretId=name, **selector)["SecretString"])


try:
    step("create the secret (first version, AWSCURRENT)")
    created = sm.create_secret(
        Name=name, SecretString=json.dumps({"username": "app", "password": "initial-password"})
    )
    old_version = created["VersionId"]
    check(created["ARN"].rsplit("-", 1)[0].endswith(name), created["ARN"])
    check(stages() == {old_version: ["AWSCURRENT"]}, stages())

    step("createSecret: new password, PutSecretValue with AWSPENDING")
    new_password = sm.get_random_password(ExcludePunctuation=True, PasswordLength=40)[
        "RandomPassword"
    ]
    check(len(new_password) == 40, new_password)
    token = str(uuid.uuid4())
    pending = json.dumps({"username": "app", "password": new_password})
    put = sm.put_secret_value(
        SecretId=name, ClientRequestToken=token, SecretString=pending, VersionStages=["AWSPENDING"]
    )
    check(put["VersionId"] == token and put["VersionStages"] == ["AWSPENDING"], put)

    step("createSecret retried with the same token: same version, nothing changes")
    again = sm.put_secret_value(
        SecretId=name, ClientRequestToken=token, SecretString=pending, VersionStages=["AWSPENDING"]
    )
    check(again["VersionId"] == token, again)
    check(len(stages()) == 2, stages())
    code, _ = error_code(
        sm.put_secret_value,
        SecretId=name,
        ClientRequestToken=token,
        SecretString="something else",
        VersionStages=["AWSPENDING"],
    )
    check(code == "ResourceExistsException", code)

    step("setSecret/testSecret: AWSPENDING holds the new value, AWSCURRENT the old")
    check(value(VersionStage="AWSPENDING")["password"] == new_password, "pending value")
    check(value()["password"] == "initial-password", "current value")
    check(value(VersionId=token, VersionStage="AWSPENDING")["password"] == new_password, "by id")

    step("a rotation in progress blocks RotateSecret")
    code, message = error_code(
        sm.rotate_secret,
        SecretId=name,
        RotationLambdaARN="arn:aws:lambda:us-east-1:000000000000:function:rotator",
        RotateImmediately=False,
    )
    check(code == "InvalidRequestException", code)
    check(message == "A previous rotation isn't complete. That rotation will be reattempted.", message)

    step("finishSecret: move AWSCURRENT to the new version")
    code, _ = error_code(
        sm.update_secret_version_stage,
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
    )
    check(code == "InvalidParameterException", f"RemoveFromVersionId is required: {code}")
    sm.update_secret_version_stage(
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=old_version,
    )
    check(
        stages() == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT", "AWSPENDING"]},
        stages(),
    )
    check(value()["password"] == new_password, "current is the new value")
    check(value(VersionStage="AWSPREVIOUS")["password"] == "initial-password", "previous")

    step("clean up AWSPENDING")
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
    check(stages() == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}, stages())
    described = sm.describe_secret(SecretId=name)
    check(
        described["VersionIdsToStages"] == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]},
        described["VersionIdsToStages"],
    )

    step("a second rotation: the first version becomes deprecated")
    token2 = str(uuid.uuid4())
    sm.put_secret_value(
        SecretId=name,
        ClientRequestToken=token2,
        SecretString=json.dumps({"username": "app", "password": "third"}),
        VersionStages=["AWSPENDING"],
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token2, RemoveFromVersionId=token
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=token2
    )
    check(
        stages() == {old_version: [], token: ["AWSPREVIOUS"], token2: ["AWSCURRENT"]}, stages()
    )
    listed = sm.list_secret_version_ids(SecretId=name)["Versions"]
    check(sorted(v["VersionId"] for v in listed) == sorted([token, token2]), listed)

    step("RotateSecret: rotating now with an unknown function is refused, a schedule is stored")
    code, message = error_code(
        sm.rotate_secret,
        SecretId=name,
        RotationLambdaARN="arn:aws:lambda:us-east-1:000000000000:function:rotator",
        RotationRules={"AutomaticallyAfterDays": 30},
    )
    check(
        code == "AccessDeniedException"
        and message
        == "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function "
        "policy grants access to the principal secretsmanager.amazonaws.com.",
        (code, message),
    )
    sm.rotate_secret(
        SecretId=name,
        RotationLambdaARN="arn:aws:lambda:us-east-1:000000000000:function:rotator",
        RotationRules={"ScheduleExpression": "rate(10 days)"},
        RotateImmediately=False,
    )
    described = sm.describe_secret(SecretId=name)
    check(described["RotationEnabled"] is True, described)
    check(described["RotationRules"]["AutomaticallyAfterDays"] == 10, described["RotationRules"])
    check("NextRotationDate" in described, described)
    sm.cancel_rotate_secret(SecretId=name)
    check(sm.describe_secret(SecretId=name)["RotationEnabled"] is False, "cancelled")
finally:
    try:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError:
        pass

print("secrets-rotation-boto3: PASS")
