"""Fixtures of the deploy tests."""

from __future__ import annotations

import pytest

from tests.deploy.stack import parsed


@pytest.fixture(scope="module")
def template() -> dict:
    """The stack's template, parsed."""
    return parsed()
