"""deploy/README.md, read as someone deploying for the first time would follow it:
every command, parameter, output, secret shape, alarm and variable it names is checked
against the templates, the workflow, the CLI and the tear-down script, so that the
guide and what it describes cannot drift apart."""

from __future__ import annotations

import json
import re
import runpy

import pytest

from tests.deploy.stack import parsed
from tests.support import ROOT
from totesys_cli.cli import cli
from totesys_cli.config.settings import default
from totesys_cli.config.urls import parse_database_url, url_from_secret

GUIDE = (ROOT / "deploy" / "README.md").read_text()
WORKFLOW = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()


STACK = parsed()
ROLES = parsed(ROOT / "deploy" / "deploy-role.yaml")


def _commands() -> list[str]:
    """Every shell command of the guide's sh blocks, continuation lines joined."""
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", GUIDE, re.MULTILINE | re.DOTALL)
    commands = []
    for indent, body in blocks:
        lines = [line.removeprefix(indent) for line in body.splitlines()]
        joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
        commands += [line.strip() for line in joined.splitlines() if line.strip()]
    return commands


COMMANDS = _commands()


def _overrides(command: str) -> dict[str, str]:
    return dict(re.findall(r'"(\w+)=([^"]*)"', command))


def test_the_guide_has_its_commands():
    assert len(COMMANDS) > 20
    assert any(c.startswith("deploy ") for c in COMMANDS)


def test_every_output_it_reads_exists():
    read = set(re.findall(r"\$\(output (\w+)\)", GUIDE))
    assert read == {
        "RepositoryUri",
        "ClusterName",
        "TaskDefinitionArn",
        "RunTaskNetworkConfiguration",
        "LogGroupName",
    }
    assert read <= set(STACK["Outputs"])


def test_every_parameter_it_passes_exists_with_an_allowed_value():
    calls = [c for c in COMMANDS if re.match(r"(.*&& )?deploy ", c)]
    first = _overrides(calls[0])
    required = {name for name, p in STACK["Parameters"].items() if "Default" not in p}
    assert required <= set(first), "the first deploy must give every parameter without default"
    assert first["ScheduleState"] == "DISABLED"
    assert [_overrides(c) for c in calls[1:]] == [
        {"ScheduleState": "ENABLED"},
        {"ImageTag": "$TAG"},
    ]
    roles = next(c for c in COMMANDS if "deploy-role.yaml" in c)
    # in prose as well as in the commands: "Name=value" or `Name=value`
    mentioned = re.findall(r'[`"]([A-Z]\w+)=([^`"$]*)[`"]', GUIDE)
    for name, value in [*re.findall(r'"(\w+)=([^"]*)"', roles), *mentioned]:
        template = (
            ROLES if name in ROLES["Parameters"] and name not in STACK["Parameters"] else STACK
        )
        parameter = template["Parameters"].get(name)
        assert parameter is not None, name
        allowed = parameter.get("AllowedValues")
        if allowed and value and not value.startswith("$"):
            assert value in [str(a) for a in allowed], (name, value)
    assert set(_overrides(roles)) <= set(ROLES["Parameters"])


def test_every_name_in_backticks_that_looks_like_a_template_name_is_one():
    names = set(re.findall(r"`([A-Z][a-z]+(?:[A-Z][a-z]*)+)`", GUIDE))
    known = {*STACK["Parameters"], *STACK["Outputs"], *ROLES["Parameters"], *ROLES["Outputs"]}
    assert names and names <= known, names - known


def test_the_secret_shapes_it_shows_are_the_ones_the_code_reads():
    for shown in re.findall(r"--secret-string '([^']*)'", GUIDE):
        secret = json.loads(shown)
        url = url_from_secret("source", "shown", secret, "TOTESYS_SOURCE_URL")
        assert (url.host, url.database, url.query["sslmode"]) == (
            secret["host"],
            secret["dbname"],
            "require",
        )
    credentials = json.loads(re.search(r'`(\{"username": [^`]*\})`', GUIDE).group(1))
    address = re.search(r"WAREHOUSE_URL='([^']*)'", GUIDE).group(1)
    url = url_from_secret(
        "warehouse", "shown", credentials, "X", parse_database_url("warehouse", address, "X")
    )
    assert (url.username, url.host, url.port, url.database) == (
        "...",
        "warehouse.example.internal",
        5432,
        "warehouse",
    )
    assert "WarehouseUrl" in STACK["Parameters"] and "SourceUrl" in STACK["Parameters"]


def test_the_one_off_task_names_the_container_and_a_real_command():
    (override,) = re.findall(r"--overrides '([^']*)'", GUIDE)
    (container,) = json.loads(override)["containerOverrides"]
    (defined,) = STACK["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["name"] == defined["Name"]
    assert container["command"][0] in cli.commands
    for rule in ("LakeGcRule", "LakeCompactRule"):
        daily = json.loads(STACK["Resources"][rule]["Properties"]["Targets"][0]["Input"])
        (scheduled,) = daily["containerOverrides"]
        assert scheduled["name"] == defined["Name"]
        group = cli.commands[scheduled["command"][0]]
        assert scheduled["command"][1] in group.commands


def test_its_alarm_table_is_the_stack_s_alarms():
    listed = set(re.findall(r"^\| `STACK-([a-z-]+)` \|", GUIDE, re.MULTILINE))
    alarms = {
        r["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for r in STACK["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert listed == alarms


def test_the_deadline_it_quotes_is_the_default():
    assert "540 by default" in GUIDE
    assert STACK["Parameters"]["MaxRuntimeSeconds"]["Default"] == default("max_runtime") == 540


def test_the_workflow_variables_are_the_ones_it_lists():
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", GUIDE, re.MULTILINE))
    used = set(re.findall(r"vars\.([A-Z_]+)", WORKFLOW))
    assert listed == used
    assert "--role-arn" in WORKFLOW and '"ImageTag=$TAG"' in WORKFLOW
    assert "describe-images" in WORKFLOW  # a re-run of one commit does not push again


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c.startswith("python deploy/teardown.py")]
)
def test_the_teardown_commands_use_flags_the_script_has(command, capsys):
    main = runpy.run_path(str(ROOT / "deploy" / "teardown.py"))["main"]
    with pytest.raises(SystemExit):
        main(["--help"])
    helped = capsys.readouterr().out
    for flag in re.findall(r"(--[a-z-]+)", command) + re.findall(r"`(--[a-z-]+)`", GUIDE):
        assert flag in helped, flag


def test_the_cloudformation_role_may_manage_every_kind_of_resource_the_stack_has():
    """A resource type the service role has no action for fails the deploy in AWS only."""
    role = ROLES["Resources"]["CloudFormationRole"]["Properties"]["Policies"][0]
    services = {
        action.split(":")[0]
        for statement in role["PolicyDocument"]["Statement"]
        for action in statement["Action"]
    }
    kinds = {r["Type"].split("::")[1].lower() for r in STACK["Resources"].values()}
    assert kinds <= services, kinds - services
    for name in ("RepositoryName", "LakeCatalogName"):  # what it scopes its actions by
        assert ROLES["Parameters"][name]["Default"] == STACK["Parameters"][name]["Default"]
