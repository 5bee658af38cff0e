"""Fixtures of the facade's fast layer: the app in-process against a fake core.

The app runs under an in-process uvicorn server and is driven with httpx (and
the openai SDK). falcon.testing's simulated client signals ``http.disconnect``
as soon as it has sent the body, which the facade (rightly) treats as the
client going away, so it cannot drive a turn to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from http_facade.app import FacadeApp, create_app
from http_facade.config import FacadeConfig
from tests.facade import fake_core
from tests.facade.fake_core import GOOD_KEY, FakeCore, free_port
from tests.facade.gunicorn_proc import Facade, start_facade

AUTH = {"Authorization": f"Bearer {GOOD_KEY}"}


@pytest.fixture(scope="session")
async def fake() -> AsyncIterator[FakeCore]:
    core = FakeCore()
    core.scripts["echo"] = fake_core.echo
    await core.start()
    yield core
    await core.stop()


@dataclass
class Served:
    app: FacadeApp
    base_url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=20, **kw)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task
        await self.app.core.close()


async def serve_app(config: FacadeConfig) -> Served:
    app = create_app(config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="asyncio",
            lifespan="off",
            log_level="warning",
        )
    )
    task = asyncio.ensure_future(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    return Served(app, f"http://127.0.0.1:{port}", server, task)


def make_config(addr: str, **kw: Any) -> FacadeConfig:
    base: dict[str, Any] = {
        "core_addr": addr,
        "keepalive_seconds": 15.0,
        "max_body_bytes": 256 * 1024,
    }
    base.update(kw)
    return FacadeConfig(**base)


@pytest.fixture(scope="session")
async def served(fake: FakeCore) -> AsyncIterator[Served]:
    s = await serve_app(make_config(fake.addr))
    yield s
    await s.stop()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with served.client() as c:
        yield c


@pytest.fixture(scope="session")
def facade(core: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Facade]:
    """Live layer: gunicorn in front of the real core (``core`` is tests/conftest.py's)."""
    f = start_facade(
        core.addr,
        tmp_path_factory.mktemp("facade") / "gunicorn.log",
        workers=2,
        admin_token=core.env["CCAPI_ADMIN_TOKEN"],
    )
    yield f
    f.stop()


@pytest.fixture
def sdk(facade: Facade, core: Any) -> Iterator[openai.OpenAI]:
    """Live layer: the official SDK against ``facade``, with the core's API key."""
    client = openai.OpenAI(
        base_url=facade.base_url + "/v1", api_key=core.api_key, max_retries=0, timeout=90
    )
    yield client
    client.close()
