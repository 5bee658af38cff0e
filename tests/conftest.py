"""Shared fixtures: the model double and a real `ccapi core` wired to it."""

from __future__ import annotations

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
