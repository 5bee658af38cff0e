"""Shared fixtures: the model double and a real `ccapi core` wired to it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.model_double import ModelDouble
from tests.stack import CoreProcess, start_core


@pytest.fixture(scope="session")
def model_double() -> Iterator[ModelDouble]:
    with ModelDouble() as double:
        yield double


@pytest.fixture(autouse=True)
def _fresh_script(request: pytest.FixtureRequest) -> Iterator[None]:
    # Each test scripts its own replies; leftovers must not leak into the next.
    yield
    if "model_double" in request.fixturenames:
        request.getfixturevalue("model_double").reset()


@pytest.fixture(scope="session")
def core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url)
    yield process
    process.cleanup()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # In CI everything the suite needs is installed (Chromium, PostgreSQL, npm):
    # a skipped test there proves nothing, so it counts as a failure.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if _in_ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped in CI: {report.longrepr}"
