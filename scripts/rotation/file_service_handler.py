"""file_service_handler.py - a rotation function in the shape of AWS's SecretsManagerRotationTemplate (lambda_function.py),
unmodified in its protocol: it reads SECRETS_MANAGER_ENDPOINT as AWS's published functions do,
checks the version's stages with DescribeSecret, creates the pending value with
GetRandomPassword and PutSecretValue(AWSPENDING), and moves AWSCURRENT in finishSecret.

Its "service" is a file (the secret's "password_file"): setSecret writes the pending password
there, testSecret checks it. When the file named by the secret's "fail_marker" exists, setSecret
fails, as a database that refuses the change would.
"""

import json
import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    arn = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]

    service_client = boto3.client(
        "secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"]
    )

    metadata = service_client.describe_secret(SecretId=arn)
    if not metadata["RotationEnabled"]:
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        raise ValueError(
            "Secret version %s has no stage for rotation of secret %s." % (token, arn)
        )
    if "AWSCURRENT" in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s." % (token, arn))
        return
    elif "AWSPENDING" not in versions[token]:
        raise ValueError(
            "Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn)
        )

    if step == "createSecret":
        create_secret(service_client, arn, token)
    elif step == "setSecret":
        set_secret(service_client, arn, token)
    elif step == "testSecret":
        test_secret(service_client, arn, token)
    elif step == "finishSecret":
        finish_secret(service_client, arn, token)
    else:
        raise ValueError("Invalid step parameter")


def create_secret(service_client, arn, token):
    current = json.loads(
        service_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    )
    try:
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        logger.info("createSecret: Successfully retrieved secret for %s." % arn)
    except service_client.exceptions.ResourceNotFoundException:
        exclude = os.environ.get("EXCLUDE_CHARACTERS", "/@\"'\\")
        passwd = service_client.get_random_password(ExcludeCharacters=exclude)
        current["password"] = passwd["RandomPassword"]
        service_client.put_secret_value(
            SecretId=arn,
            ClientRequestToken=token,
            SecretString=json.dumps(current),
            VersionStages=["AWSPENDING"],
        )
        logger.info("createSecret: Successfully put secret for ARN %s and version %s." % (arn, token))


def pending(service_client, arn, token):
    return json.loads(
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")[
            "SecretString"
        ]
    )


def set_secret(service_client, arn, token):
    value = pending(service_client, arn, token)
    marker = value.get("fail_marker")
    if marker and os.path.exists(marker):
        raise RuntimeError("setSecret: the service refused the new password")
    with open(value["password_file"], "w") as f:
        f.write(value["password"])


def test_secret(service_client, arn, token):
    value = pending(service_client, arn, token)
    with open(value["password_file"]) as f:
        if f.read() != value["password"]:
            raise ValueError("testSecret: the service does not have the pending password")


def finish_secret(service_client, arn, token):
    metadata = service_client.describe_secret(SecretId=arn)
    current_version = None
    for version in metadata["VersionIdsToStages"]:
        if "AWSCURRENT" in metadata["VersionIdsToStages"][version]:
            if version == token:
                logger.info("finishSecret: Version %s already marked as AWSCURRENT for %s" % (version, arn))
                return
            current_version = version
            break
    service_client.update_secret_version_stage(
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current_version,
    )
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s." % (token, arn))
