"""The CLI boundary: exit codes, one clear line per error, no secrets, a fast --help."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from tests.support import (
    ENCODED_PASSWORD,
    PASSWORD,
    TOTESYS,
    invoke,
    leaks,
    one_error_line,
    totesys,
    unmeasured,
)


def test_help_is_instant_and_imports_no_heavy_library():
    probe = (
        "import sys; from totesys_cli.cli import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'boto3', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=unmeasured()
    )
    assert out.stdout.strip().endswith("[]")
    # processor time, not wall time: a busy machine slows the clock, not the work
    spent = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [sys.executable, "-m", "totesys_cli", "--help"],
            check=True,
            capture_output=True,
            env=unmeasured(),
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    assert min(spent) < 0.5, spent


def test_help_lists_only_working_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "init" in result.stdout
    assert "TOTESYS_LOG_FORMAT" in result.stdout


def test_malformed_url_exits_2_with_one_line():
    result = invoke("init", "--warehouse-url", "postgresql://user:pw@host:notaport/db")
    assert result.exit_code == 2
    assert one_error_line(result.stderr).endswith(
        "ERROR   [startup] the warehouse URL is malformed. Set TOTESYS_WAREHOUSE_URL to a URL like "
        "postgresql://user:password@host:5432/dbname"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:p@localhost/db", "the warehouse URL must be a PostgreSQL URL, not mysql://"),
        (
            "postgresql+psycopg://u:p@localhost/db",
            "the warehouse URL asks for the psycopg driver; totesys uses pg8000",
        ),
        ("postgresql://u:p@localhost", "the warehouse URL names no database"),
        (
            "postgresql://u:p@localhost/db?sslmode=sometimes",
            "the warehouse URL has an unknown sslmode 'sometimes'",
        ),
        (
            "postgresql://u:p@localhost/db?connect_timeout=0",
            "the warehouse URL's connect_timeout '0' is not a positive whole number of seconds",
        ),
        (
            "postgresql://u:p@localhost/db?connect_timeout=soon",
            "the warehouse URL's connect_timeout 'soon' is not a positive whole number of seconds",
        ),
        (
            "postgresql://u:p@localhost/db?pool=3",
            "the warehouse URL has unsupported parameters: pool",
        ),
    ],
)
def test_unusable_urls_exit_2_naming_the_problem(url, problem):
    result = invoke("init", "--warehouse-url", url)
    assert result.exit_code == 2
    assert problem in one_error_line(result.stderr)


def test_missing_warehouse_setting_exits_2():
    result = invoke("init", env={"TOTESYS_WAREHOUSE_URL": None, "TOTESYS_WAREHOUSE_SECRET": None})
    assert result.exit_code == 2
    assert one_error_line(result.stderr).endswith(
        "[init] no warehouse database is configured. "
        "Set TOTESYS_WAREHOUSE_URL or TOTESYS_WAREHOUSE_SECRET"
    )


def test_unknown_option_exits_2_with_one_line():
    result = invoke("init", "--bogus")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        "error: No such option '--bogus'. Run 'cli init --help' for usage"
    )


def test_wrong_password_exits_2_without_the_password(pg, empty_db, password_role):
    user, _ = password_role
    url = pg.url(empty_db, user=user, password=PASSWORD + "-wrong")
    result = invoke("init", "--warehouse-url", url)
    assert result.exit_code == 2, result.stderr
    line = one_error_line(result.stderr)
    assert "cannot connect to the warehouse database at " in line
    assert line.endswith(f"/{empty_db}: wrong user or password. Check TOTESYS_WAREHOUSE_URL")
    assert not leaks(result.output)


def test_no_password_where_one_is_asked_exits_2(pg, empty_db, password_role):
    user, _ = password_role
    result = invoke("init", "--warehouse-url", pg.url(empty_db, user=user))
    assert result.exit_code == 2, result.output
    assert one_error_line(result.stderr).endswith(
        f"/{empty_db}: it asks for a password and none was given. "
        "Give the password in TOTESYS_WAREHOUSE_URL, or its secret"
    )


def test_right_password_works(pg, empty_db, password_role):
    user, password = password_role
    result = invoke("init", "--warehouse-url", pg.url(empty_db, user=user, password=password))
    assert result.exit_code == 0, result.output
    assert not leaks(result.output)


def test_missing_database_exits_2(pg):
    result = invoke("init", "--warehouse-url", pg.url("no_such_database"))
    assert result.exit_code == 2
    assert one_error_line(result.stderr).endswith(
        "/no_such_database: the database does not exist. Check TOTESYS_WAREHOUSE_URL"
    )


def test_unreachable_host_exits_1_without_the_password():
    url = f"postgresql://totesys:{ENCODED_PASSWORD}@127.0.0.1:9/warehouse"
    result = invoke("init", "--warehouse-url", url)
    assert result.exit_code == 1
    assert one_error_line(result.stderr).endswith(
        "[init] cannot reach the warehouse database at 127.0.0.1:9/warehouse: "
        "Connection refused. Check TOTESYS_WAREHOUSE_URL"
    )
    assert not leaks(result.output)


def test_json_errors_carry_level_step_and_run_id():
    url = f"postgresql://totesys:{ENCODED_PASSWORD}@127.0.0.1:9/warehouse"
    result = invoke("--log-format", "json", "init", "--warehouse-url", url)
    assert result.exit_code == 1
    line = json.loads(one_error_line(result.stderr))
    assert line["level"] == "ERROR"
    assert line["step"] == "init"
    assert len(line["run_id"]) == 12
    assert line["message"].startswith("cannot reach the warehouse database at 127.0.0.1:9")
    assert not leaks(result.output)


def test_debug_shows_the_traceback_without_the_password():
    url = f"postgresql://totesys:{ENCODED_PASSWORD}@127.0.0.1:9/warehouse"
    result = invoke("--log-level", "DEBUG", "init", "--warehouse-url", url)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "totesys_cli/db/connect.py" in result.stderr  # where it failed
    assert not leaks(result.output)


def test_unexpected_errors_still_get_one_line(monkeypatch, warehouse_url):
    def broken(db):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("totesys_cli.ops.init.init_warehouse", broken)
    result = invoke("init", "--warehouse-url", warehouse_url)
    assert result.exit_code == 1
    assert one_error_line(result.stderr).endswith(
        "[init] unexpected error: ZeroDivisionError: division by zero. "
        "Re-run with --log-level DEBUG and report it"
    )


def _echoing_its_password(db):
    """A failure whose message carries the password, as a driver's might."""
    raise ValueError(
        f"cannot use {db.url.render_as_string(hide_password=False)} or password={db.url.password}"
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_message_carrying_the_password_is_masked(monkeypatch, fmt):
    monkeypatch.setattr("totesys_cli.ops.init.init_warehouse", _echoing_its_password)
    url = f"postgresql://etl:{ENCODED_PASSWORD}@127.0.0.1:9/warehouse"
    result = invoke("--log-format", fmt, "init", "--warehouse-url", url)
    assert result.exit_code == 1
    assert (
        "cannot use postgresql+pg8000://etl:***@127.0.0.1:9/warehouse or password=***"
        in result.stderr
    )
    assert not leaks(result.output)


def test_a_password_read_from_a_secret_is_masked_too(monkeypatch, aws):
    import boto3

    boto3.client("secretsmanager").create_secret(
        Name="dw",
        SecretString=json.dumps(
            {"username": "etl", "password": PASSWORD, "host": "127.0.0.1", "dbname": "dw"}
        ),
    )
    monkeypatch.setattr("totesys_cli.ops.init.init_warehouse", _echoing_its_password)
    result = invoke("init", env={"TOTESYS_WAREHOUSE_SECRET": "dw", "TOTESYS_WAREHOUSE_URL": None})
    assert result.exit_code == 1
    assert (
        "cannot use postgresql+pg8000://etl:***@127.0.0.1:5432/dw or password=***" in result.stderr
    )
    assert not leaks(result.output)


def test_installed_command_runs_as_a_subprocess(warehouse_url):
    result = subprocess.run(
        [TOTESYS, "init", "--warehouse-url", warehouse_url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "warehouse initialised: created 32 objects\n"
    assert "created table dim_date" in result.stderr


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert "0.1.0" in result.stdout


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "totesys_cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("totesys")


def test_global_options_may_follow_the_command(warehouse_url):
    result = totesys("init", "--warehouse-url", warehouse_url, "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(lines) == 32 and {line["step"] for line in lines} == {"init"}
    quiet = totesys("init", "--log-level=WARNING", "--warehouse-url", warehouse_url)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_mistyped_command_gets_one_sentence_naming_the_right_one():
    result = totesys("statu")
    assert result.returncode == 2
    assert result.stderr == (
        "error: No such command 'statu'. Did you mean 'status'? Run 'totesys --help' for usage\n"
    )


def _ended(*code: str) -> subprocess.CompletedProcess:
    """A process that sets up what `code` says, then runs the CLI's entry point, its
    output buffered as a pipe's is by default."""
    script = "\n".join(
        ["import atexit, sys, threading, time", *code, "from totesys_cli.cli import main", "main()"]
    )
    buffered = {k: v for k, v in unmeasured().items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=buffered
    )


def test_the_process_ends_as_an_exit_does_without_the_interpreter_teardown():
    """The entry point skips tearing the interpreter down, not what an exit does: the
    exit code, the whole of a piped stdout, the exit handlers, a thread still running."""
    done = _ended(
        "atexit.register(lambda: print('exit handler ran'))",  # printed, so not yet flushed
        "sys.argv = ['totesys', 'config', '--warehouse-url', 'postgresql://u@h/w']",
    )
    assert done.returncode == 0, done.stderr
    assert "postgresql://u@h/w" in done.stdout
    assert done.stdout.endswith("exit handler ran\n")
    assert _ended("sys.argv = ['totesys', 'no-such-command']").returncode == 2
    waited = _ended(
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread ended'))).start()",
        "sys.argv = ['totesys', '--version']",
    )
    assert waited.returncode == 0
    assert waited.stdout.splitlines() == [waited.stdout.splitlines()[0], "thread ended"]
