"""totesys reads a few of pg8000's internals: this pg8000 must have what it reads."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from sqlalchemy import text

from totesys_cli.db import driver
from totesys_cli.db.copy import copy_out
from totesys_cli.errors import RuntimeFailure

INSTALLED = metadata.version("pg8000")


def test_the_installed_pg8000_is_one_the_project_declares():
    declared = Requirement(driver.declared())
    assert declared.specifier, "pyproject.toml must bound pg8000: db/driver.py reads its internals"
    assert Version(INSTALLED) in declared.specifier, (
        f"pg8000 {INSTALLED} is outside {declared}, the releases the COPY reader is known to "
        "work with"
    )


def test_this_pg8000_has_what_totesys_reads(pg):
    with pg.engine().connect() as conn:
        raw = conn.connection.driver_connection
        missing = [name for name in driver.INTERNALS if not hasattr(raw, name)]
        assert missing == [], (
            f"pg8000 {INSTALLED} no longer has {missing}, which db/driver.py reads: adapt it "
            "to this release or keep pg8000 within the declared bounds"
        )
        query = "COPY (SELECT g FROM generate_series(1, 5) AS g) TO STDOUT"
        assert [bytes(c) for c in copy_out(conn, query, 2)] == [b"1\n2\n", b"3\n4\n", b"5\n"]
        # the connection carries on inside its transaction, as pg8000 left it
        assert conn.execute(text("SELECT 7")).scalar_one() == 7


def test_a_pg8000_without_them_fails_in_one_line_naming_the_reason():
    class Changed:  # a release that renamed its sockets
        _transaction_status = b"I"

    with pytest.raises(RuntimeFailure) as caught:
        driver.check(Changed())
    assert caught.value.message == (
        f"pg8000 {INSTALLED} has no _sock, _usock, which totesys uses; this pg8000 release is "
        f"not one totesys is known to work with. Install {driver.declared()}"
    )
