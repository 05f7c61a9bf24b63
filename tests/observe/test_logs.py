"""Logs: the same structured fields as text and JSON, to stderr and to CloudWatch."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess

import boto3
import pytest

from tests.support import ENCODED_PASSWORD, PASSWORD, TOTESYS, invoke, leaks
from totesys_cli.observe import logs

GROUP = "/totesys/test"


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logs.configure("INFO", fmt, stream=stream)
    return logging.getLogger("totesys_cli.test"), stream


def test_json_lines_carry_run_step_and_fields():
    logs.set_run_id("run123")
    log, stream = _capture("json")
    try:
        log.info("outside")
        with logs.step("extract"):
            log.info("table read", extra={"table": "sales_order", "rows": 12, "seconds": 0.5})
    finally:
        logs.shutdown()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["step"] is None
    assert set(first) == {"time", "level", "message", "logger", "run_id", "step"}
    assert second == {
        **second,
        "level": "INFO",
        "message": "table read",
        "run_id": "run123",
        "step": "extract",
        "table": "sales_order",
        "rows": 12,
        "seconds": 0.5,
        "logger": "totesys_cli.test",
    }
    assert second["time"].endswith("+00:00")


def test_text_lines_read_well():
    log, stream = _capture("text")
    try:
        with logs.step("load"):
            log.warning("slow", extra={"table": "fact_payment", "seconds": 3})
    finally:
        logs.shutdown()
    assert stream.getvalue().rstrip().endswith("WARNING [load] slow  table=fact_payment seconds=3")


def test_registered_secrets_are_masked_everywhere():
    logs.register_secret(PASSWORD)
    log, stream = _capture("json")
    try:
        log.error("connecting with %r failed", PASSWORD)
        log.error("connecting to postgresql://u:%s@h/db failed", ENCODED_PASSWORD)
    finally:
        logs.shutdown()
    assert not leaks(stream.getvalue())
    assert "connecting with '***' failed" in stream.getvalue()
    assert "connecting to postgresql://u:***@h/db failed" in stream.getvalue()


@pytest.mark.parametrize("password", ["warehouse", "database", "cannot"])
def test_a_password_that_is_one_of_our_words_is_not_given_away(password):
    """Masking our own words would say which word the password is."""
    url = f"postgresql://etl:{password}@127.0.0.1:9/warehouse"
    result = invoke("init", "--warehouse-url", url)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "] cannot reach the warehouse database at 127.0.0.1:9/warehouse: " in line
    assert "***" not in line


def _events(group: str) -> list[dict]:
    client = boto3.client("logs")
    events = []
    for stream in client.describe_log_streams(logGroupName=group)["logStreams"]:
        events += client.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])[
            "events"
        ]
    return [json.loads(e["message"]) for e in events]


def test_cloudwatch_receives_our_json_lines(aws, warehouse_url):
    boto3.client("logs").create_log_group(logGroupName=GROUP)
    result = invoke("--cloudwatch-log-group", GROUP, "init", "--warehouse-url", warehouse_url)
    assert result.exit_code == 0, result.output
    lines = _events(GROUP)
    assert len(lines) == 32
    assert all(line["step"] == "init" and line["level"] == "INFO" for line in lines)
    assert len({line["run_id"] for line in lines}) == 1
    assert lines[0]["message"] == "created table dim_counterparty"


def test_cloudwatch_group_is_never_created(aws, warehouse_url):
    result = invoke(
        "--cloudwatch-log-group", "/not/there", "init", "--warehouse-url", warehouse_url
    )
    assert result.exit_code == 0
    groups = boto3.client("logs").describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == []


def test_a_subprocess_flushes_its_error_to_cloudwatch_before_exiting(moto_endpoint):
    boto3.client("logs").create_log_group(logGroupName=GROUP)
    url = f"postgresql://totesys:{ENCODED_PASSWORD}@127.0.0.1:9/warehouse"
    run = subprocess.run(
        [TOTESYS, "--log-format", "json", "init", "--warehouse-url", url],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TOTESYS_CLOUDWATCH_LOG_GROUP": GROUP},
    )
    assert run.returncode == 1
    stderr_line = json.loads(run.stderr.strip().splitlines()[-1])
    (line,) = _events(GROUP)
    assert line == stderr_line  # the same bytes' meaning on both transports
    assert line["level"] == "ERROR" and line["step"] == "init"
    assert not leaks(run.stderr + json.dumps(line))
