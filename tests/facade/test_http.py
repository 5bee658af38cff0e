"""Cross-cutting HTTP: request ids, CORS, security headers, models, health, OpenAPI."""

from __future__ import annotations

import httpx
import openai

from http_facade.middleware import SECURITY_HEADERS
from tests.facade.conftest import AUTH, Served, make_config, serve_app
from tests.facade.fake_core import GOOD_KEY, FakeCore


async def test_request_id_on_every_response(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/health"),
        ("GET", "/nope"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/openapi.json"),
    ]:
        r = await client.request(method, path)
        assert r.headers["x-request-id"].startswith("req_"), (method, path)
    r = await client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health", headers={"X-Request-Id": "bad id <script>"})
    assert r.headers["x-request-id"].startswith("req_")


async def test_security_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_cors_when_configured(fake: FakeCore) -> None:
    s = await serve_app(make_config(fake.addr, cors_origins=("https://app.example",)))
    try:
        async with s.client() as c:
            r = await c.get("/v1/models", headers={**AUTH, "Origin": "https://app.example"})
            assert r.headers["access-control-allow-origin"] == "https://app.example"
            assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
            r = await c.get("/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers
            r = await c.options(
                "/v1/chat/completions",
                headers={
                    "Origin": "https://app.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            assert r.status_code == 200
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
    finally:
        await s.stop()


async def test_models(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models", headers=AUTH)
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "list"
    ids = [m["id"] for m in data["data"]]
    assert ids == ["claude-sonnet-4-5", "sonnet", "gpt-4o", "claude-opus-4-1", "opus"]
    assert data["data"][2] == {
        "id": "gpt-4o",
        "object": "model",
        "created": 1_759_000_000,
        "owned_by": "anthropic",
    }
    r = await client.get("/v1/models/gpt-4o", headers=AUTH)
    assert r.json() == {
        "id": "gpt-4o",
        "object": "model",
        "created": 1_759_000_000,
        "owned_by": "anthropic",
    }
    r = await client.get("/v1/models/gpt-5-nope", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    r = await client.get("/v1/models")
    assert r.status_code == 401


async def test_models_with_openai_sdk(served: Served) -> None:
    sdk = openai.AsyncOpenAI(base_url=served.base_url + "/v1", api_key=GOOD_KEY, max_retries=0)
    page = await sdk.models.list()
    assert "sonnet" in [m.id for m in page.data]
    m = await sdk.models.retrieve("opus")
    assert m.owned_by == "anthropic"
    await sdk.close()


async def test_health(client: httpx.AsyncClient, fake: FakeCore) -> None:
    for path in ("/health", "/health/live"):
        r = await client.get(path)
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
    n = len(fake.requests)
    r = await client.get("/health/ready")
    assert (r.status_code, r.json()["status"]) == (200, "ready")
    await fake.set_serving(False)
    try:
        r = await client.get("/health/ready")
        assert r.status_code == 503
    finally:
        await fake.set_serving(True)
    assert len(fake.requests) == n  # probes never run a turn


async def test_openapi(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/models/{model_id}",
        "/health",
        "/health/live",
        "/health/ready",
    }
    assert set(doc["paths"]) >= {
        "/v1/responses",
        "/v1/responses/{response_id}",
        "/v1/responses/{response_id}/cancel",
        "/v1/responses/{response_id}/input_items",
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/files",
        "/v1/sessions/{session_id}/files/{path}",
    }
    assert set(doc["paths"]["/v1/responses/{response_id}"]) == {"get", "delete"}
    assert {"model", "input"} <= set(
        doc["components"]["schemas"]["ResponseCreateRequest"]["properties"]
    )
    schemas = doc["components"]["schemas"]
    req = schemas["ChatCompletionRequest"]
    assert {"model", "messages"} <= set(req["required"])
    assert req["additionalProperties"] is False

    def refs(node: object) -> set[str]:
        if isinstance(node, dict):
            out = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
            for v in node.values():
                out |= refs(v)
            return out
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node)) if node else set()
        return set()

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
