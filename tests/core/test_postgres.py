"""Two core processes sharing one PostgreSQL: limits still hold exactly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest

from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.pg import PostgresServer, pg_server  # noqa: F401 - fixture
from tests.stack import CoreProcess, ccapi, start_core, within_one_rate_window


@pytest.fixture
def two_cores(pg_server: PostgresServer, model_double: ModelDouble) -> Iterator[list[CoreProcess]]:  # noqa: F811
    url = pg_server.create_database("two_cores")
    first = start_core(model_double.url, CCAPI_DATABASE_URL=url)
    second = start_core(model_double.url, CCAPI_DATABASE_URL=url)
    yield [first, second]
    for core in (first, second):
        core.cleanup()
    pg_server.drop_database("two_cores")


def _parallel(cores: list[CoreProcess], key: str, count: int) -> list[grpc.RpcError | None]:
    errors: list[grpc.RpcError | None] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        result = run_turn(cores[i % len(cores)], request(f"burst {i}"), key=key, timeout=120)
        with lock:
            errors.append(result.error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return errors


def test_rpm_holds_across_two_cores(two_cores: list[CoreProcess]) -> None:
    within_one_rate_window()
    key = (
        ccapi(two_cores[0].env, "keys", "create", "--name", "pg", "--rpm", "5")
        .strip()
        .splitlines()[-1]
    )
    errors = _parallel(two_cores, key, 20)
    assert sum(e is None for e in errors) == 5
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in errors if e is not None)


def test_concurrency_holds_across_two_cores(
    two_cores: list[CoreProcess], model_double: ModelDouble
) -> None:
    key = ccapi(two_cores[0].env, "keys", "create", "--name", "pg", "--max-concurrent", "5")
    model_double.set_default(Reply.hang(8, "slow"))
    errors = _parallel(two_cores, key.strip().splitlines()[-1], 20)
    assert sum(e is None for e in errors) == 5
