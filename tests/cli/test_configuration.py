"""The README's configuration table is what the commands take: every variable it lists
is a declared setting with its option, and each one takes effect."""

from __future__ import annotations

import json
import re

from tests.support import ROOT, totesys
from totesys_cli.cli import cli
from totesys_cli.config.settings import SETTINGS


def _readme_rows() -> list[tuple[list[str], list[str]]]:
    """(variables, options) of each row of the README's configuration table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`TOTESYS_"):
            rows.append(
                (re.findall(r"`(TOTESYS_\w+)`", cells[0]), re.findall(r"`(--[\w-]+)`", cells[1]))
            )
    return rows


def test_every_variable_in_the_readme_is_a_declared_setting_with_its_option():
    declared = {s.envvar: f"--{s.name.replace('_', '-')}" for s in SETTINGS.values()}
    rows = _readme_rows()
    assert len(rows) >= 12
    for variables, options in rows:
        assert [declared.get(v) for v in variables] == options, variables
    listed = {v for variables, _ in rows for v in variables}
    assert set(declared) <= listed  # and nothing declared is left out of the README


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_option_of_a_setting_reads_its_declared_variable():
    by_option = {s.name: s.envvar for s in SETTINGS.values()}
    seen = set()
    for path, command in [((), cli), *_commands(cli)]:
        for param in command.params:
            if param.name in by_option:
                assert param.envvar == by_option[param.name], (path, param.name)
                seen.add(param.name)
    assert seen == set(by_option)  # every declared setting is some command's option


def test_the_log_level_and_format_variables_take_effect(source_url, warehouse_url, tmp_path):
    as_json = totesys("init", "--warehouse-url", warehouse_url, env={"TOTESYS_LOG_FORMAT": "json"})
    assert as_json.returncode == 0, as_json.stderr
    lines = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert len(lines) == 32 and {line["level"] for line in lines} == {"INFO"}
    lake = str(tmp_path / "lake")
    quiet = totesys(
        "extract",
        "--source-url",
        source_url,
        "--lake-url",
        lake,
        env={"TOTESYS_LOG_LEVEL": "ERROR"},
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
