"""/v1/sessions against the fake core: wire format, routing of file paths, errors."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import httpx
import pytest

from claudecode.v1 import events_pb2, sessions_pb2
from http_facade.sessions import protocol
from tests.facade.conftest import AUTH, Served
from tests.facade.fake_core import GOOD_KEY, FakeCore


@pytest.fixture(autouse=True)
def workspace(fake: FakeCore) -> None:
    fake.sessions.clear()
    fake.files.clear()
    for i in range(3):
        fake.sessions[f"sess{i}"] = sessions_pb2.Session(
            id=f"sess{i}",
            model="claude-sonnet-4-5",
            created_at=1_700_000_000,
            last_active_at=1_700_000_100,
            turn_count=2,
            last_turn_id=f"t{i}",
            usage=events_pb2.Usage(input_tokens=10, output_tokens=5, cost_usd=0.5),
        )
    fake.files[("sess0", "src/app.py")] = b"print('hi')\n"
    fake.files[("sess0", "a b%.bin")] = b"\x00\x01"


async def test_list_get_delete(client: httpx.AsyncClient, fake: FakeCore) -> None:
    r = await client.get("/v1/sessions", headers=AUTH, params={"limit": 2})
    assert r.status_code == 200
    page = protocol.SessionList.model_validate(r.json())
    assert [s.id for s in page.data] == ["sess0", "sess1"]
    assert page.has_more and page.next_page_token == "2"
    r = await client.get("/v1/sessions", headers=AUTH, params={"page_token": "2"})
    assert [s["id"] for s in r.json()["data"]] == ["sess2"] and not r.json()["has_more"]

    r = await client.get("/v1/sessions/sess1", headers=AUTH)
    s = protocol.SessionObject.model_validate(r.json())
    assert s.last_response_id == "resp_t1" and s.forked_from is None and s.usage.cost_usd == 0.5

    r = await client.delete("/v1/sessions/sess1", headers=AUTH)
    assert r.json() == {"id": "sess1", "object": "session.deleted", "deleted": True}
    r = await client.get("/v1/sessions/sess1", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["param"] == "session_id"

    for bad in ("0", "201", "x"):
        r = await client.get("/v1/sessions", headers=AUTH, params={"limit": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    r = await client.get("/v1/sessions")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


async def test_files_listing_and_download(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/sessions/sess0/files", headers=AUTH)
    listing = protocol.SessionFileList.model_validate(r.json())
    assert [f.path for f in listing.data] == ["a b%.bin", "src/app.py"]

    r = await client.get("/v1/sessions/sess0/files/src/app.py", headers=AUTH)
    assert r.status_code == 200 and r.content == b"print('hi')\n"
    assert r.headers["content-type"] == "text/x-python"
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''app.py"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = await client.get("/v1/sessions/sess0/files/a%20b%25.bin", headers=AUTH)
    assert r.status_code == 200 and r.content == b"\x00\x01"

    r = await client.get("/v1/sessions/sess0/files/missing.txt", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["param"] == "path"


def _raw_get(served: Served, path: str) -> tuple[int, bytes]:
    """A GET with the path exactly as written (httpx would normalise dot segments)."""
    url = urlsplit(served.base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=20)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {GOOD_KEY}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions/sess0/files/../../../etc/passwd",
        "/v1/sessions/sess0/files/src/../../x",
        "/v1/sessions/sess0/files/%2e%2e/%2e%2e/etc/passwd",
        "/v1/sessions/sess0/files/%2E%2E%2Fsecret",
        "/v1/sessions/sess0/files//etc/passwd",
        "/v1/sessions/sess0/files/%2Fetc%2Fpasswd",
    ],
)
async def test_traversal_never_reaches_a_file(served: Served, fake: FakeCore, path: str) -> None:
    import asyncio

    before = len(fake.file_requests)
    status, body = await asyncio.to_thread(_raw_get, served, path)
    assert status in (400, 404), (path, status, body)
    assert b"root:" not in body
    # The facade passes the decoded path on as it is; the core decides (and refuses).
    (sent,) = fake.file_requests[before:]
    assert sent.startswith("/") or ".." in sent.split("/"), sent
