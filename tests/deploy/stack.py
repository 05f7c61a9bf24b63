"""The stack's template as data, and the stack deployed into moto: what the deploy
tests share."""

from __future__ import annotations

from pathlib import Path

import boto3
import yaml

from tests.support import ROOT

TEMPLATE = ROOT / "deploy" / "totesys.yaml"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt ...)."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        return {name: value.split(".", 1) if suffix == "GetAtt" else value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _tag)


def parsed(path: Path = TEMPLATE) -> dict:
    """A CloudFormation template as data, its short tags as their long forms."""
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - safe loader


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


PARAMETERS = {
    "ImageTag": "abc123",
    "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "SecurityGroupId": "sg-0123456789abcdef0",
    "SourceSecretArn": "arn:aws:secretsmanager:eu-west-2:123456789012:secret:totesys-src",
    "WarehouseSecretArn": "arn:aws:secretsmanager:eu-west-2:123456789012:secret:totesys-dw",
    "AlarmEmail": "data-team@example.com",
}


def deploy_into_moto() -> dict[str, str]:
    """The stack named totesys, created from the template with PARAMETERS: its outputs."""
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(
        StackName="totesys",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    (stack,) = cloudformation.describe_stacks(StackName="totesys")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
