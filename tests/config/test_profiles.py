"""Profiles in a totesys.toml: precedence (option > variable > profile > default) for
every setting, the file checked as a whole, secrets kept out of readable files, and
`totesys config`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support import Pipeline, invoke, one_error_line, totesys
from totesys_cli.config.settings import SETTINGS

# each setting's value in the profile, its variable and its option, as TOML, as the
# variable or option gives it, and as `totesys config --json` shows each
SAMPLES = {
    "source_url": ("postgresql://p@h/s1", "postgresql://v@h/s2", "postgresql://o@h/s3"),
    "source_secret": ("prof-src", "var-src", "opt-src"),
    "warehouse_url": ("postgresql://p@h/w1", "postgresql://v@h/w2", "postgresql://o@h/w3"),
    "warehouse_secret": ("prof-dw", "var-dw", "opt-dw"),
    "lake_url": ("/lake/p", "/lake/v", "/lake/o"),
    "raw_url": ("s3://p/raw", "s3://v/raw", "s3://o/raw"),
    "processed_url": ("s3://p/processed", "s3://v/processed", "s3://o/processed"),
    "max_runtime": (61.0, 62.0, 63.0),
    "overlap": (1.0, 2.0, 3.0),
    "batch_rows": (1001, 1002, 1003),
    "range_rows": (11, 12, 13),
    "earliest_date": ("2001-01-01", "2002-01-01", "2003-01-01"),
    "latest_date": ("2091-01-01", "2092-01-01", "2093-01-01"),
    "clock_skew": (1.0, 2.0, 3.0),
    "deletes_every": (30.0, 20.0, 10.0),
    "mass_delete_percent": (7.0, 8.0, 9.0),
    "log_level": ("DEBUG", "ERROR", "WARNING"),
    "log_format": ("json", "text", "json"),
    "cloudwatch_log_group": ("/p", "/v", "/o"),
    "token": ("prof-token-1", "var-token-2", "opt-token-3"),
}
GROUP = {"log_level", "log_format", "cloudwatch_log_group"}  # given before the command


def _toml(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    return str(value)


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _config(*args: str, env: dict | None = None) -> dict:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_setting_has_a_sample():
    assert set(SAMPLES) == set(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_an_option_beats_its_variable_which_beats_the_profile_which_beats_the_default(
    name, tmp_path, request
):
    if name == "cloudwatch_log_group":  # the lines go there too: to moto
        request.getfixturevalue("aws")
    profile, variable, option = SAMPLES[name]
    other = "batch_rows = 4242\n" if name != "batch_rows" else "overlap = 7\n"
    file = _write(tmp_path / "totesys.toml", f"[profiles.x]\n{name} = {_toml(profile)}\n{other}")
    flag = f"--{name.replace('_', '-')}"
    given = [flag, str(option)]
    nothing = {SETTINGS[name].envvar: None}
    layers = [
        ([], nothing, "default", SETTINGS[name].default),
        (["--config", str(file), "--profile", "x"], nothing, "profile", profile),
        (["--config", str(file), "--profile", "x"], {SETTINGS[name].envvar: str(variable)},
         "variable", variable),
        ([*given, "--config", str(file), "--profile", "x"],
         {SETTINGS[name].envvar: str(variable)}, "option", option),
    ]  # fmt: skip
    for before, env, source, value in layers:
        if name in GROUP:
            shown = _config(*before, "config", "--json", env=env)
        else:  # a command's option follows the command
            group = [w for w in before if w not in given]
            mine = [w for w in before if w in given]
            shown = _config(*group, "config", *mine, "--json", env=env)
        setting = shown["settings"][name]
        assert setting["from"] == source, (name, source)
        if name == "token":
            assert setting["value"] == (None if value is None else "***")
        elif hasattr(value, "isoformat"):
            assert setting["value"] == value.isoformat()
        else:
            assert setting["value"] == value, (name, source)


def test_the_profile_reaches_every_command_and_its_own_options(tmp_path):
    file = _write(
        tmp_path / "totesys.toml",
        '[profiles.default]\nlake_url = "/lake/d"\nlog_format = "json"\n'
        '[profiles.prod]\nlake_url = "/lake/p"\n',
    )
    shown = _config("--config", str(file), "config", "--json")
    assert shown["profile"] == "default" and shown["file"] == str(file)
    assert shown["settings"]["lake_url"] == {
        "value": "/lake/d",
        "from": "profile",
        "variable": "TOTESYS_LAKE_URL",
        "option": "--lake-url",
    }
    assert shown["settings"]["log_format"]["from"] == "profile"
    prod = _config("config", "--json", env={"TOTESYS_CONFIG": str(file), "TOTESYS_PROFILE": "prod"})
    assert prod["profile"] == "prod" and prod["settings"]["lake_url"]["value"] == "/lake/p"
    # a command's settings only: `lake gc` takes no source, `init` only the warehouse
    gc = _config("--config", str(file), "config", "lake", "gc", "--json")["settings"]
    assert "lake_url" in gc and "source_url" not in gc and "log_level" in gc
    init = _config("--config", str(file), "config", "init", "--json")["settings"]
    assert "warehouse_url" in init and "lake_url" not in init


def test_the_file_is_found_in_the_working_directory(tmp_path):
    _write(tmp_path / "totesys.toml", '[profiles.default]\nlake_url = "/lake/here"\n')
    found = totesys("config", "--json", cwd=tmp_path, env={"TOTESYS_CONFIG": None})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["settings"]["lake_url"]["value"] == "/lake/here"
    elsewhere = totesys("config", "--json", cwd=tmp_path.parent, env={"TOTESYS_CONFIG": None})
    assert json.loads(elsewhere.stdout)["profile"] is None


def test_config_as_text_names_where_each_value_comes_from(tmp_path):
    file = _write(
        tmp_path / "totesys.toml",
        '[profiles.dev]\nwarehouse_url = "postgresql://me:s3cret-pw@dw:5432/dw"\n'
        "batch_rows = 500\n",
    )
    result = invoke(
        "--config", str(file), "--profile", "dev", "config", "--max-runtime", "90",
        env={"TOTESYS_OVERLAP_MINUTES": "3"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"profile dev from {file}"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["warehouse_url"] == ["postgresql://me:***@dw:5432/dw", "profile"]
    assert rows["batch_rows"] == ["500", "profile"]
    assert rows["max_runtime"] == ["90.0", "option", "--max-runtime"]
    assert rows["overlap"] == ["3.0", "variable", "TOTESYS_OVERLAP_MINUTES"]
    assert rows["source_url"] == ["-", "default"]
    assert "s3cret-pw" not in result.output


BAD = [  # (the file, the line to name, what the error says)
    ('[profiles.dev]\nlake_url = "/l"\nbatch_row = 500\n', 3, "unknown key 'batch_row' in"),
    ('[profiles.dev]\n\nbatch_rows = "500"\n', 3, "batch_rows in profile 'dev' must be an int"),
    ("[profiles.dev]\nmax_runtime = true\n", 2, "max_runtime in profile 'dev' must be a num"),
    ("[profiles.dev]\nlake_url = 5\n", 2, "lake_url in profile 'dev' must be a string"),
    ("[profiles.dev]\nbatch_rows = 5\n", 2, "batch_rows in profile 'dev': 5 is not in the"),
    ('[profiles.dev]\nlog_level = "LOUD"\n', 2, "log_level in profile 'dev': 'LOUD' is not"),
    ("[profiles.dev]\nearliest_date = 2020-13-01\n", None, "is not valid TOML"),
    ("[profiles.dev]\n[profiles.dev.lake_url]\n", None, "lake_url in profile 'dev' must be a str"),
    ('[settings]\nlake_url = "/l"\n', None, "unknown top-level key 'settings'"),
    # the whole file is checked, not only the profile in use
    ('[profiles.dev]\n[profiles.prod]\noverlap = "x"\n', 3, "overlap in profile 'prod' must"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_a_bad_file_is_one_line_naming_file_line_and_key_and_exit_2(text, line, message, tmp_path):
    file = _write(tmp_path / "totesys.toml", text)
    lake = str(tmp_path / "lake")
    result = totesys("--profile", "dev", "extract", "--source-url", "postgresql://nobody@nowhere/db",
                     "--lake-url", lake, env={"TOTESYS_CONFIG": str(file)})  # fmt: skip
    assert result.returncode == 2, result.stderr
    error = one_error_line(result.stderr)
    assert message in error, error
    if line is not None:
        assert f"{file}, line {line}: " in error, error
    assert not (tmp_path / "lake").exists()  # nothing ran


def test_a_missing_profile_or_file_is_one_line_and_exit_2(tmp_path):
    file = _write(tmp_path / "totesys.toml", "[profiles.dev]\n[profiles.prod]\n")
    missing = invoke("--config", str(file), "--profile", "staging", "config")
    assert missing.exit_code == 2
    assert one_error_line(missing.stderr).endswith(
        f"there is no profile 'staging' in {file} (it has: dev, prod). "
        "Check --profile or TOTESYS_PROFILE"
    )
    no_file = invoke("--config", str(tmp_path / "nope.toml"), "config")
    assert no_file.exit_code == 2
    assert "the configuration file" in one_error_line(no_file.stderr)
    nowhere = totesys("--profile", "dev", "config", cwd=tmp_path.parent)
    assert nowhere.returncode == 2
    assert "--profile dev needs a totesys.toml" in one_error_line(nowhere.stderr)


def test_a_password_in_a_file_others_can_read_is_ignored_with_a_warning(
    pg, empty_db, password_role, tmp_path
):
    user, password = password_role
    url = pg.url(empty_db, user=user, password=password)
    file = _write(
        tmp_path / "totesys.toml", f"[profiles.dw]\nwarehouse_url = {_toml(url)}\n", 0o644
    )
    readable = totesys("--config", str(file), "--profile", "dw", "init")
    assert readable.returncode == 2  # the server wants the password the file may not give
    warning = readable.stderr.splitlines()[0]
    assert "WARNING" in warning and f"{file}, line 2: the password in warehouse_url" in warning
    assert "others can read the file (mode 0644)" in warning and "chmod 600" in warning
    assert password not in readable.stderr + readable.stdout
    file.chmod(0o600)
    private = totesys("--config", str(file), "--profile", "dw", "init")
    assert private.returncode == 0, private.stderr
    assert "WARNING" not in private.stderr


def test_a_profile_reads_the_password_from_the_variable_it_names(
    pg, empty_db, password_role, tmp_path
):
    user, password = password_role
    bare = pg.url(empty_db, user=user)
    file = _write(
        tmp_path / "totesys.toml",
        f'[profiles.dw]\nwarehouse_url = {_toml(bare)}\nwarehouse_password_env = "DW_PASSWORD"\n',
        0o644,  # no secret in the file: others may read it
    )
    done = totesys("--config", str(file), "--profile", "dw", "init", env={"DW_PASSWORD": password})
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    unset = totesys("--config", str(file), "--profile", "dw", "init", env={"DW_PASSWORD": None})
    assert unset.returncode == 2
    assert one_error_line(unset.stderr).endswith(
        "profile 'dw' reads the warehouse password from DW_PASSWORD, which is not set. "
        "Export DW_PASSWORD, or choose another profile"
    )


def test_a_token_in_a_readable_file_is_ignored(tmp_path):
    file = _write(tmp_path / "totesys.toml", '[profiles.default]\ntoken = "abc-secret"\n', 0o640)
    shown = invoke("--config", str(file), "config", "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["settings"]["token"] == {
        "value": None,
        "from": "default",
        "variable": "TOTESYS_DASHBOARD_TOKEN",
        "option": "--token",
    }


def test_the_same_run_through_a_profile_and_through_variables(pg, source_template, tmp_path):
    """Two copies of one source: one run by variables, one by a profile found in the
    working directory. The warehouses and what the commands print are the same."""
    from tests.conftest import _unique

    results = []
    for way in ("variables", "profile"):
        source = pg.url(pg.create_database(_unique("src"), template=source_template))
        warehouse = pg.url(pg.create_database(_unique("dw")))
        folder = tmp_path / way
        folder.mkdir()
        pipeline = Pipeline(source, warehouse, folder / "lake", init=False)
        settings = {
            "TOTESYS_SOURCE_URL": source,
            "TOTESYS_WAREHOUSE_URL": warehouse,
            "TOTESYS_LAKE_URL": str(folder / "lake"),
            "TOTESYS_BATCH_ROWS": "100",  # 300 orders: three files
        }
        if way == "variables":
            env = settings
        else:
            keys = {v.envvar: k for k, v in SETTINGS.items()}
            body = "".join(
                f"{keys[var]} = {_toml(int(value) if value.isdigit() else value)}\n"
                for var, value in settings.items()
            )
            _write(folder / "totesys.toml", f"[profiles.default]\n{body}")
            env = {name: None for name in settings}
        printed = []
        for command in (["init"], ["run-all"], ["verify"]):
            run = totesys(*command, cwd=folder, env={**env, "TOTESYS_CONFIG": None})
            assert run.returncode == 0, (way, command, run.stderr)
            # all but the time of the snapshot verify names
            printed += [line for line in run.stdout.splitlines() if not line.startswith("as of")]
        counts = [
            len(list((folder / "lake" / "raw" / t).rglob("*.parquet")))
            for t in ("sales_order", "payment")
        ]
        assert counts[0] == 3, (way, counts)  # the batch size took effect
        results.append((pipeline.snapshot(), printed, counts))
    assert results[0] == results[1]
    assert os.environ.get("TOTESYS_PROFILE") is None  # nothing here leaks into the suite


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts_and_profile_names(shell, tmp_path):
    script = totesys(env={"_TOTESYS_COMPLETE": f"{shell}_source"})
    assert script.returncode == 0 and "_TOTESYS_COMPLETE" in script.stdout, script.stderr
    _write(tmp_path / "totesys.toml", "[profiles.dev]\n[profiles.prod]\n[profiles.staging]\n")
    words = {"COMP_WORDS": "totesys --profile p", "COMP_CWORD": "2"}
    if shell == "fish":  # fish gives the word being completed, not its place
        words = {"COMP_WORDS": "totesys --profile p", "COMP_CWORD": "p"}
    names = totesys(cwd=tmp_path, env={"_TOTESYS_COMPLETE": f"{shell}_complete", **words})
    assert names.returncode == 0, names.stderr
    assert "prod" in names.stdout and "dev" not in names.stdout and "staging" not in names.stdout


def test_the_readme_example_file_is_valid_and_means_what_it_says(tmp_path):
    from tests.support import ROOT

    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    file = _write(tmp_path / "totesys.toml", example, 0o644)  # it holds no secret
    laptop = _config("--config", str(file), "config", "--json")
    assert laptop["profile"] == "default"
    assert laptop["settings"]["lake_url"]["from"] == "profile"
    prod = _config(
        "--config", str(file), "--profile", "prod", "config", "--json",
        env={"PROD_DW_PASSWORD": "from-the-variable"},
    )  # fmt: skip
    settings = prod["settings"]
    assert settings["warehouse_url"]["value"].startswith("postgresql://analyst:***@dw.internal")
    assert settings["source_secret"]["value"] == "totesys/source"
    assert settings["log_level"] == {**settings["log_level"], "value": "WARNING", "from": "profile"}


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("postgresql://etl:Sup3rS@cretPW@dw:5432/w", "must be percent-encoded"),
        ("postgresql://etl@dw:5432/w?password=Sup3rScretPW", "unsupported parameters: password"),
    ],
    ids=["an @ in the password", "a password as a URL parameter"],
)
def test_config_refuses_what_every_command_refuses_and_shows_no_part_of_it(tmp_path, url, refusal):
    """Given as an option or in a profile, such a URL is one line and exit 2, as run-all
    says it, and no fragment of the password reaches the output."""
    file = _write(tmp_path / "totesys.toml", f'[profiles.dev]\nwarehouse_url = "{url}"\n')
    ran = totesys("run-all", "--warehouse-url", url, "--source-url", "postgresql://u@h/s")
    assert ran.returncode == 2 and refusal in one_error_line(ran.stderr)
    for shown in (
        totesys("config", "--json", "--warehouse-url", url),
        totesys("--config", str(file), "--profile", "dev", "config", "--json"),
    ):
        assert shown.returncode == 2, shown.stdout
        assert refusal in one_error_line(shown.stderr)
        assert not any(part in shown.stdout + shown.stderr for part in ("cretPW", "Sup3r"))
