"""A test's missing prerequisite (a browser, nginx, root): skipped on a developer's machine,
a failure under CI, where .ci/run promised to install it."""

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(available: bool, what: str) -> None:
    if available:
        return
    if under_ci():
        pytest.fail(f"{what}; CI is set, so this test must run (see .ci/run)", pytrace=False)
    pytest.skip(what)
