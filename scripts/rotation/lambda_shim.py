#!/usr/bin/env python3
"""lambda_shim.py - run a Python Lambda handler as a Keyhold rotation function command.

    [[rotation_functions]]
    arn = "arn:aws:lambda:us-east-1:111122223333:function:rotate-db"
    command = ["python3", "scripts/rotation/lambda_shim.py", "/opt/rotators/handler.py"]
    role_arn = "arn:aws:iam::111122223333:role/rotator"

Keyhold runs the command once per rotation step with the Lambda invocation event
({SecretId, ClientRequestToken, Step, RotationToken}) on stdin and AWS_ENDPOINT_URL,
SECRETS_MANAGER_ENDPOINT, AWS_REGION and the role's temporary credentials in the environment.
The shim loads HANDLER_FILE (a module written for Lambda, e.g. AWS's published rotation
functions), calls its lambda_handler(event, context) (or the function named after a colon:
handler.py:my_handler), and exits non-zero when it raises: the step failed, and the traceback
on stderr ends with the error Keyhold records.
"""

import importlib.util
import json
import os
import sys
import time


class Context:
    """The parts of Lambda's context object that handlers use."""

    def __init__(self, timeout_s):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "rotation")
        self.aws_request_id = os.environ.get("AWS_LAMBDA_REQUEST_ID", "")
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: lambda_shim.py HANDLER_FILE[:FUNCTION]")
    path, _, name = sys.argv[1].partition(":")
    spec = importlib.util.spec_from_file_location("lambda_function", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec.loader.exec_module(module)
    handler = getattr(module, name or "lambda_handler")
    event = json.load(sys.stdin)
    timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "30"))
    handler(event, Context(timeout))


if __name__ == "__main__":
    main()
