"""The container recipe and the AWS deployment, tested without Docker or AWS.

moto's CloudFormation creates the buckets, roles, task definition, schedule, log groups
and topic, and those are asserted on what moto built. moto ignores alarms, metric
filters, bucket policies, SNS subscriptions and bucket properties beyond encryption, so
those are asserted on the parsed template; and since moto does not evaluate JSON filter
patterns, a small evaluator here applies the template's patterns to the exact lines the
real CLI sent to CloudWatch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from sqlalchemy import text as sa_text

from tests.deploy.stack import PARAMETERS, deploy_into_moto, resources
from tests.support import ROOT, TOTESYS, database, unmeasured
from totesys_cli.db import engine
from totesys_cli.ops.init import init_warehouse

BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- linters


@pytest.mark.parametrize(
    "command",
    [
        ["hadolint", "Dockerfile"],
        ["actionlint", ".github/workflows/ci.yml", ".github/workflows/deploy.yml"],
        ["cfn-lint", "deploy/totesys.yaml", "deploy/deploy-role.yaml"],
    ],
)
def test_linters_are_clean(command):
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=unmeasured(),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_non_root_from_a_pinned_slim_base():
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(bases) == 2 and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", b) for b in bases)
    assert "AS build" in dockerfile and "COPY --from=build" in dockerfile
    assert re.search(r"^USER 10001$", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["totesys"]' in dockerfile and 'CMD ["run-all"]' in dockerfile
    # it installs the wheels its build stage made, whatever the project's version
    assert "totesys==" not in dockerfile and "/wheels/*.whl" in dockerfile


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_as_the_image_does(tmp_path):
    """The Dockerfile's two stages without Docker: build the wheels, install from them
    alone into an empty environment, and run the command."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(ROOT)],
        check=True,
        timeout=600,
        env=unmeasured(),
    )
    venv = tmp_path / "venv"
    # an environment without pip of its own, filled by this one's pip, from the wheels alone
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=unmeasured()
    )
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-index", "--no-compile", *wheels.glob("*.whl")],
        check=True,
        timeout=600,
        env=unmeasured(),
    )
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    helped = subprocess.run(
        [str(venv / "bin" / "totesys"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=clean,
    )
    assert helped.returncode == 0 and "run-all" in helped.stdout
    status = subprocess.run(
        [str(venv / "bin" / "totesys"), "status"],
        capture_output=True,
        text=True,
        check=False,
        env=clean,
    )
    assert status.returncode == 0, status.stderr
    assert "warehouse:       not configured" in status.stdout


# ---------------------------------------------------------------- moto CloudFormation


def test_the_stack_deploys_into_moto(aws):
    outputs = deploy_into_moto()

    s3 = boto3.client("s3")
    for bucket in (outputs["IngestionBucketName"], outputs["ProcessedBucketName"]):
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    ecs = boto3.client("ecs")
    task = ecs.describe_task_definition(taskDefinition=outputs["TaskDefinitionArn"])[
        "taskDefinition"
    ]
    assert task["family"] == "totesys-run-all" and task["memory"] == "2048"
    (container,) = task["containerDefinitions"]
    # moto leaves an AWS::NoValue entry as null where CloudFormation drops it
    env = {e["name"]: e["value"] for e in container["environment"] if e}
    assert "TOTESYS_SOURCE_URL" not in env and "TOTESYS_WAREHOUSE_URL" not in env
    assert env["TOTESYS_MAX_RUNTIME"] == "540"
    assert env["TOTESYS_SOURCE_SECRET"] == PARAMETERS["SourceSecretArn"]
    assert env["TOTESYS_WAREHOUSE_SECRET"] == PARAMETERS["WarehouseSecretArn"]
    assert env["TOTESYS_RAW_URL"] == f"s3://{outputs['IngestionBucketName']}"
    assert env["TOTESYS_PROCESSED_URL"] == f"s3://{outputs['ProcessedBucketName']}"
    assert env["TOTESYS_CLOUDWATCH_LOG_GROUP"] == outputs["LogGroupName"]
    assert container["image"].endswith(":abc123")
    assert container["logConfiguration"]["options"]["awslogs-group"] != outputs["LogGroupName"]

    iam = boto3.client("iam")
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert len([r for r in roles if r.startswith("totesys-")]) == 3

    events = boto3.client("events")
    rules = {r["ScheduleExpression"]: r for r in events.list_rules()["Rules"]}
    schedules = (("rate(10 minutes)", None), ("cron(30 3 * * ? *)", "lake gc"))
    schedules += (("rate(1 hour)", "verify"), ("cron(0 3 * * ? *)", "lake compact"))
    assert set(rules) == {expression for expression, _ in schedules}
    assert {r["State"] for r in rules.values()} == {"ENABLED"}
    for expression, command in schedules:
        (target,) = events.list_targets_by_rule(Rule=rules[expression]["Name"])["Targets"]
        assert target["EcsParameters"]["TaskDefinitionArn"] == outputs["TaskDefinitionArn"]
        overrides = json.loads(target.get("Input", "{}")).get("containerOverrides", [])
        assert [" ".join(o["command"]) for o in overrides] == ([command] if command else [])
        assert overrides == [] or overrides[0]["name"] == container["name"]
    assert outputs["RunTaskNetworkConfiguration"] == (
        "awsvpcConfiguration={subnets=[subnet-0a1b2c3d,subnet-4e5f6a7b],"
        "securityGroups=[sg-0123456789abcdef0],assignPublicIp=DISABLED}"
    )

    groups = {g["logGroupName"]: g for g in boto3.client("logs").describe_log_groups()["logGroups"]}
    assert groups[outputs["LogGroupName"]]["retentionInDays"] == 90
    assert len(boto3.client("sns").list_topics()["Topics"]) == 1
    assert (
        boto3.client("ecr").describe_repositories()["repositories"][0]["imageTagMutability"]
        == "IMMUTABLE"
    )


# ---------------------------------------------------------------- what moto ignores


def test_buckets_are_private_versioned_tls_only_and_expire_old_versions(template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert set(buckets) == {"IngestionBucket", "ProcessedBucket"}
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"]["Status"] == "Enabled"
        assert all(props["PublicAccessBlockConfiguration"].values())
        rule, *athena = props["LifecycleConfiguration"]["Rules"]
        assert "NoncurrentVersionExpiration" in rule
        assert [r["Prefix"] for r in athena] == (["athena-results/"] if athena else [])
    policies = resources(template, "AWS::S3::BucketPolicy")
    assert {p["Properties"]["Bucket"]["Ref"] for p in policies.values()} == set(buckets)
    for policy in policies.values():
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_task_runs_on_fargate_read_only(template):
    """moto's ECS ignores the launch type and network mode; they are checked here."""
    task = template["Resources"]["TaskDefinition"]["Properties"]
    assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
    assert task["ContainerDefinitions"][0]["ReadonlyRootFilesystem"] is True
    target = template["Resources"]["ScheduleRule"]["Properties"]["Targets"][0]
    network = target["EcsParameters"]["NetworkConfiguration"]["AwsVpcConfiguration"]
    assert network["Subnets"] == {"Ref": "SubnetIds"}
    assert network["SecurityGroups"] == [{"Ref": "SecurityGroupId"}]


def test_the_task_role_is_least_privilege(template):
    role = template["Resources"]["TaskRole"]["Properties"]
    (policy,) = role["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    for statement in statements.values():
        assert "*" not in json.dumps(statement["Resource"]).replace("/*", "")
        assert not any(
            a.endswith("*")
            for a in (
                [statement["Action"]]
                if isinstance(statement["Action"], str)
                else statement["Action"]
            )
        )
    assert statements["ReadItsTwoSecrets"]["Resource"] == [
        {"Ref": "SourceSecretArn"},
        {"Ref": "WarehouseSecretArn"},
    ]
    assert statements["WriteItsLogGroup"]["Resource"] == {"Fn::Sub": "${LogGroup.Arn}"}
    assert "logs:CreateLogGroup" not in json.dumps(template)  # the stack creates the group


def test_one_alarm_per_step_a_heartbeat_and_an_email(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    filters = resources(template, "AWS::Logs::MetricFilter")
    for step in ("extract", "transform", "load"):
        name = f"{step.capitalize()}Errors"
        pattern = filters[name]["Properties"]["FilterPattern"]
        assert f'$.step = "{step}"' in pattern
        alarm = alarms[f"{step.capitalize()}FailedAlarm"]["Properties"]
        assert alarm["MetricName"] == name and step in alarm["AlarmDescription"]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert filters[name]["Properties"]["LogGroupName"] == {"Ref": "LogGroup"}
    heartbeat = alarms["HeartbeatAlarm"]["Properties"]
    assert heartbeat["TreatMissingData"] == "breaching"
    assert heartbeat["Period"] * heartbeat["EvaluationPeriods"] == 1800
    assert heartbeat["ComparisonOperator"] == "LessThanThreshold"
    subscription = template["Resources"]["AlarmSubscription"]["Properties"]
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == {"Ref": "AlarmEmail"}


def test_the_schedules_start_as_the_parameter_says_and_the_heartbeat_follows(template):
    state = template["Parameters"]["ScheduleState"]
    assert state["Default"] == "ENABLED"  # an existing stack keeps running on update
    for rule in ("ScheduleRule", "LakeGcRule", "LakeCompactRule", "VerifyRule"):
        assert template["Resources"][rule]["Properties"]["State"] == {"Ref": "ScheduleState"}
    verify = template["Resources"]["VerifyRule"]["Properties"]
    assert verify["ScheduleExpression"] == {"Ref": "VerifySchedule"}
    assert template["Parameters"]["VerifySchedule"]["Default"] == "rate(1 hour)"
    (target,) = verify["Targets"]
    assert json.loads(target["Input"])["containerOverrides"][0]["command"] == ["verify"]
    heartbeat = template["Resources"]["HeartbeatAlarm"]["Properties"]
    assert heartbeat["ActionsEnabled"] == {"Fn::If": ["ScheduleOn", True, False]}
    assert template["Conditions"]["ScheduleOn"] == {
        "Fn::Equals": [{"Ref": "ScheduleState"}, "ENABLED"]
    }


def test_the_dashboard_charts_every_metric_and_alarm_against_the_deadline(template):
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    substituted = re.sub(r"\$\{MaxRuntimeSeconds\}", "540", body)
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", substituted))["widgets"]
    charted = {m[1] for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]}
    filters = resources(template, "AWS::Logs::MetricFilter")
    published = {
        f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters.values()
    }
    assert published - charted == {"RowsSetAside"}  # charted as RowsQuarantined
    (seconds,) = [w for w in widgets if "deadline" in w["properties"]["title"]]
    (line,) = seconds["properties"]["annotations"]["horizontal"]
    assert line["value"] == 540
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    named = set(re.findall(r"alarm:\$\{(\w+)\}", body))
    assert named == set(resources(template, "AWS::CloudWatch::Alarm"))
    assert len(alarm_widget["properties"]["alarms"]) == len(named)


def test_a_credentials_only_secret_takes_its_address_from_a_stack_parameter(template):
    env = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0][
        "Environment"
    ]
    conditional = [e["Fn::If"] for e in env if "Fn::If" in e]
    assert conditional == [
        [
            "SourceAddress",
            {"Name": "TOTESYS_SOURCE_URL", "Value": {"Ref": "SourceUrl"}},
            {"Ref": "AWS::NoValue"},
        ],
        [
            "WarehouseAddress",
            {"Name": "TOTESYS_WAREHOUSE_URL", "Value": {"Ref": "WarehouseUrl"}},
            {"Ref": "AWS::NoValue"},
        ],
    ]


# ---------------------------------------------------------------- the filters on real lines

_CONDITION = re.compile(r'\(?\s*\$\.(\w+)\s*(!=|=|>=|<=|>|<)\s*("[^"]*"|-?\d+(?:\.\d+)?)\s*\)?')
_COMPARE = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


_ABSENT = re.compile(r"\(?\s*\$\.(\w+)\s+NOT EXISTS\s*\)?")


def matches(pattern: str, message: str) -> bool:
    """CloudWatch JSON filter patterns of the form { ($.a = "x") && ($.b != "y") &&
    ($.n > 0) && ($.c NOT EXISTS) }: strings compare equal or not equal, numbers only
    with numbers."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}")
    try:
        event = json.loads(message)
    except ValueError:
        return False
    parts = [part.strip() for part in body[1:-1].split("&&")]
    absent = [_ABSENT.fullmatch(part) for part in parts]
    if any(m and m.group(1) in event for m in absent):
        return False
    conditions = [_CONDITION.fullmatch(p) for p, m in zip(parts, absent, strict=True) if not m]
    assert all(conditions), pattern
    for condition in conditions:
        field, operator, literal = condition.groups()
        value = event.get(field)
        if literal.startswith('"'):
            assert operator in ("=", "!="), pattern
            if (value == literal[1:-1]) != (operator == "="):
                return False
        elif (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not _COMPARE[operator](value, float(literal))
        ):
            return False
    return True


def metric_value(transformation: dict, message: str) -> float:
    """The value a metric filter publishes for a matching line: a number or $.field."""
    value = transformation["MetricValue"]
    return float(json.loads(message)[value[2:]] if value.startswith("$.") else value)


def test_the_evaluator_itself():
    assert matches(
        '{ ($.level = "ERROR") && ($.step = "load") }', '{"level": "ERROR", "step": "load"}'
    )
    assert not matches(
        '{ ($.level = "ERROR") && ($.step = "load") }', '{"level": "ERROR", "step": "extract"}'
    )
    assert not matches('{ $.message = "run succeeded" }', "plain text")
    assert matches("{ ($.n > 0) }", '{"n": 3}')
    assert not matches("{ ($.n > 0) }", '{"n": 0}')
    assert not matches("{ ($.n > 0) }", '{"n": "3"}')
    assert metric_value({"MetricValue": "$.n"}, '{"n": 3}') == 3.0
    other = '{ ($.level = "ERROR") && ($.step != "load") && ($.step != "gc") }'
    assert matches(other, '{"level": "ERROR", "step": "init"}')
    assert not matches(other, '{"level": "ERROR", "step": "gc"}')
    absent = '{ ($.level = "ERROR") && ($.drift NOT EXISTS) }'
    assert matches(absent, '{"level": "ERROR", "step": "verify"}')
    assert not matches(absent, '{"level": "ERROR", "step": "verify", "drift": 2}')


def test_rows_set_aside_raise_the_data_quality_alarm(template, pipeline_with_a_bad_row):
    filters = resources(template, "AWS::Logs::MetricFilter")
    alarm = resources(template, "AWS::CloudWatch::Alarm")["DataQualityAlarm"]["Properties"]
    rule = filters["RowsSetAside"]["Properties"]
    assert alarm["MetricName"] == rule["MetricTransformations"][0]["MetricName"]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert "totesys quarantine" in alarm["AlarmDescription"]
    quarantining, clean = pipeline_with_a_bad_row
    last = quarantining.stderr.strip().splitlines()[-1]
    assert matches(rule["FilterPattern"], last)
    assert metric_value(rule["MetricTransformations"][0], last) == 1
    assert not matches(rule["FilterPattern"], clean.stderr.strip().splitlines()[-1])


@pytest.fixture
def pipeline_with_a_bad_row(source_url, warehouse_url, tmp_path):
    """(a run that set one row aside, the run before it), both with JSON logs."""
    from sqlalchemy import text

    from tests.support import Pipeline

    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    clean = pipeline.cli("--log-format", "json", "run-all")
    assert clean.returncode == 0, clean.stderr
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "UPDATE sales_order SET agreed_delivery_date = '2026-13-45', last_updated = "
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE sales_order_id = 7"
            )
        )
    quarantining = pipeline.cli("--log-format", "json", "run-all")
    assert quarantining.returncode == 0, quarantining.stderr
    return quarantining, clean


@pytest.mark.slow
def test_every_error_line_reaches_cloudwatch_and_raises_exactly_one_alarm(
    template, moto_endpoint, pg, source_url, warehouse_url, empty_db, tmp_path
):
    """Each failure the schedules can meet, as the real CLI logs it to CloudWatch: its
    ERROR line matches one error filter, that of the alarm named for it, and no other."""
    group = "/totesys/prod"
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName=group)
    env = {**os.environ, "TOTESYS_CLOUDWATCH_LOG_GROUP": group, "TOTESYS_LOG_FORMAT": "json"}
    unreachable = "postgresql://u:p@127.0.0.1:9/db"
    broken_lake = tmp_path / "broken"
    (broken_lake / "raw" / "_manifests").mkdir(parents=True)
    (broken_lake / "raw" / "_manifests" / "0000000001.json").write_text("{ not json")
    lake = ["--lake-url", str(tmp_path / "a")]
    uninitialised = pg.url(empty_db)
    failures = {  # the alarm's filter: (command, extra environment, exit code)
        "ExtractErrors": (["extract", "--source-url", unreachable, *lake], {}, 1),
        "TransformErrors": (["transform", "--lake-url", str(broken_lake)], {}, 1),
        "LoadErrors": (["load", "--warehouse-url", unreachable, *lake], {}, 1),
        "StartupErrors": [
            # a setting missing from the task definition
            (["run-all", "--warehouse-url", uninitialised, *lake], {}, 2),
            # Secrets Manager does not answer
            (
                ["run-all", *lake],
                {
                    "TOTESYS_SOURCE_SECRET": "totesys/source",
                    "TOTESYS_WAREHOUSE_SECRET": "totesys/warehouse",
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:9",
                },
                1,
            ),
            # the schedule ran before `totesys init`
            (
                ["run-all", "--source-url", source_url, "--warehouse-url", uninitialised, *lake],
                {},
                1,
            ),
        ],
        "GcErrors": (["lake", "gc", "--grace-hours", "0", *lake], {}, 2),
        # a manifest it cannot read: the daily compaction stops, and the lake is as it was
        "CompactErrors": (["lake", "compact", "--lake-url", str(broken_lake)], {}, 1),
        "OtherErrors": [
            (["init", "--warehouse-url", unreachable], {}, 1),
            # a verify that cannot run is a failure, not a drift
            (["verify", "--source-url", source_url, "--warehouse-url", unreachable], {}, 1),
        ],
    }
    for commands in failures.values():
        for args, extra, code in commands if isinstance(commands, list) else [commands]:
            result = subprocess.run(
                [TOTESYS, *args], capture_output=True, text=True, env={**env, **extra}, check=False
            )
            assert result.returncode == code, (args, result.stderr)
    init_warehouse(database(warehouse_url))
    good = subprocess.run(
        [
            TOTESYS,
            "run-all",
            "--source-url",
            source_url,
            "--warehouse-url",
            warehouse_url,
            "--lake-url",
            str(tmp_path / "lake"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    # the warehouse drifts from the source while every run succeeds: the scheduled verify
    with engine(database(warehouse_url)).begin() as conn:
        conn.execute(sa_text("UPDATE fact_payment SET payment_amount = payment_amount + 1"))
    drifting = subprocess.run(
        [TOTESYS, "verify", "--source-url", source_url, "--warehouse-url", warehouse_url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert drifting.returncode == 1, drifting.stderr
    failures["VerifyDrift"] = (["verify"], {}, 1)

    lines = []
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        lines += [
            e["message"]
            for e in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])[
                "events"
            ]
        ]
    assert len({json.loads(line)["run_id"] for line in lines}) == 12  # one stream per run
    filters = resources(template, "AWS::Logs::MetricFilter")
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    error_filters = {
        name: f["Properties"]["FilterPattern"]
        for name, f in filters.items()
        if '$.level = "ERROR"' in f["Properties"]["FilterPattern"]
    }
    assert set(error_filters) == set(failures)
    errors = [line for line in lines if json.loads(line)["level"] == "ERROR"]
    assert len(errors) == 11
    for line in errors:
        matched = [name for name, pattern in error_filters.items() if matches(pattern, line)]
        assert len(matched) == 1, (line, matched)
    for name, commands in failures.items():
        selected = [json.loads(line) for line in errors if matches(error_filters[name], line)]
        expected = len(commands) if isinstance(commands, list) else 1
        assert len(selected) == expected, (name, selected)
        (alarm,) = [a for a in alarms.values() if a["Properties"]["MetricName"] == name]
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        if name != "VerifyDrift":  # that one is hourly, as verify is
            assert alarm["Properties"]["Period"] <= 600  # within one schedule period
    (drift,) = [json.loads(line) for line in errors if matches(error_filters["VerifyDrift"], line)]
    assert drift["step"] == "verify" and drift["message"].startswith("the warehouse differs")
    published = filters["VerifyDrift"]["Properties"]["MetricTransformations"][0]
    assert metric_value(published, json.dumps(drift)) == drift["drift"] >= 1
    startup = [json.loads(line) for line in errors if matches(error_filters["StartupErrors"], line)]
    assert any("the warehouse is not initialised" in e["message"] for e in startup)
    assert any("Secrets Manager" in e["message"] for e in startup)
    (described,) = [
        a["Properties"]["AlarmDescription"]
        for a in alarms.values()
        if a["Properties"]["MetricName"] == "StartupErrors"
    ]
    assert "totesys init" in described
    heartbeat = filters["RunsSucceeded"]["Properties"]["FilterPattern"]
    (line,) = [line for line in lines if matches(heartbeat, line)]
    success = json.loads(line)
    assert success["message"] == "run succeeded" and success["extracted"] > 0
    # the dashboard's metrics: each a number the success line carries
    published = {
        name: metric_value(f["Properties"]["MetricTransformations"][0], line)
        for name, f in filters.items()
        if matches(f["Properties"]["FilterPattern"], line)
    }
    assert published["RowsExtracted"] == success["extracted"] > 0
    assert published["RowsLoaded"] == success["loaded"] > 0
    assert published["RowsQuarantined"] == 0 and published["RunsSucceeded"] == 1
    steps = published["ExtractSeconds"] + published["TransformSeconds"] + published["LoadSeconds"]
    assert 0 < steps == pytest.approx(success["seconds"], abs=0.01)
    infos = [line for line in lines if json.loads(line)["level"] == "INFO"]
    assert not any(matches(p, line) for p in error_filters.values() for line in infos)
