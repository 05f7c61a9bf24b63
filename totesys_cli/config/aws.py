"""AWS: one configuration for every client (timeouts and retries), and Secrets Manager.

boto3 honours AWS_ENDPOINT_URL, so any S3-compatible store or a local stand-in works.
"""

from __future__ import annotations

import json
from typing import Any

from totesys_cli.errors import ConfigError, RuntimeFailure


def config():
    """Timeouts and retries for every AWS client, so a hung endpoint cannot hold a run."""
    from botocore.config import Config

    return Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 4})


def client(service: str):
    import boto3

    return boto3.client(service, config=config())


def read_secret(role: str, secret_id: str, envvar: str) -> Any:
    """The secret's JSON value; what is wrong says which secret and what to check."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        raw = client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        raise ConfigError(
            f"cannot read the {role} secret {secret_id!r} from Secrets Manager: {code}",
            f"Check {envvar} and that this role may call secretsmanager:GetSecretValue",
        ) from None
    except BotoCoreError as err:
        raise RuntimeFailure(
            f"cannot reach Secrets Manager for the {role} secret {secret_id!r}: {err}",
            "Check the network and AWS region",
        ) from None
    try:
        return json.loads(raw)
    except ValueError:
        return None  # not JSON: reported as the wrong shape, without echoing the value
