"""`http_facade.server.serve`: gunicorn with several ASGI workers, against the fake core."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.facade.conftest import AUTH
from tests.facade.fake_core import FakeCore
from tests.facade.gunicorn_proc import start_facade
from tests.facade.sse import events


async def test_gunicorn_serves_with_several_workers(fake: FakeCore, tmp_path: Path) -> None:
    facade = await asyncio.to_thread(start_facade, fake.addr, tmp_path / "gunicorn.log", 3)
    try:
        assert len(facade.worker_pids()) == 3
        async with httpx.AsyncClient(base_url=facade.base_url, timeout=20) as c:

            async def one(i: int) -> str:
                r = await c.post(
                    "/v1/chat/completions",
                    headers=AUTH,
                    json={
                        "model": "echo",
                        "stream": True,
                        "messages": [{"role": "user", "content": f"worker test {i}"}],
                    },
                )
                datas, _ = events(r.text)
                return "".join(d["choices"][0]["delta"].get("content") or "" for d in datas[:-1])

            got = await asyncio.gather(*(one(i) for i in range(6)))
            assert got == [f"worker test {i}" for i in range(6)]
            r = await c.get("/health/ready")
            assert r.status_code == 200
    finally:
        code = await asyncio.to_thread(facade.stop)
    assert code == 0, facade.log.read_text()[-2000:]
