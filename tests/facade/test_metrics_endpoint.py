"""The facade's /metrics against the fake core: off the /v1 path, requests
counted by route template (not the raw path), the exposure setting honoured."""

from __future__ import annotations

import httpx

from ccapi_client.telemetry import MetricsExposure
from http_facade.app import create_app
from tests.facade.conftest import AUTH, make_config
from tests.facade.fake_core import FakeCore


async def _client(fake: FakeCore, exposure: MetricsExposure) -> httpx.AsyncClient:
    app = create_app(make_config(fake.addr), exposure=exposure)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_requests_are_counted_by_route_template(fake: FakeCore) -> None:
    async with await _client(fake, MetricsExposure("on")) as client:
        await client.get("/v1/responses/resp_abc", headers=AUTH)
        await client.get("/v1/responses/resp_def", headers=AUTH)
        text = (await client.get("/metrics")).text
    lines = [line for line in text.splitlines() if line.startswith("ccapi_http_requests_total{")]
    assert lines, text
    assert all("resp_abc" not in line and "resp_def" not in line for line in lines)
    templated = [line for line in lines if 'endpoint="/v1/responses/{response_id}"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in templated) == 2


async def test_metrics_off_and_token(fake: FakeCore) -> None:
    async with await _client(fake, MetricsExposure("off")) as client:
        assert (await client.get("/metrics")).status_code == 404
    async with await _client(fake, MetricsExposure("token", "tok")) as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["message"]
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer tok"})
        assert allowed.status_code == 200
