"""Fast layer: the Files API's form checks that the facade makes before any
core call, and its OpenAPI entries (the behaviour with the core is in
test_live_files.py)."""

from __future__ import annotations

import httpx

from tests.facade.conftest import AUTH


async def test_upload_needs_multipart(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/files", headers=AUTH, json={"purpose": "user_data"})
    assert r.status_code == 400
    assert "multipart/form-data" in r.json()["error"]["message"]


async def test_purpose_must_come_before_the_file(client: httpx.AsyncClient) -> None:
    # httpx sends data fields before files; here the file comes alone.
    r = await client.post("/v1/files", headers=AUTH, files={"file": ("a.txt", b"a")})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["param"], error["code"]) == ("purpose", "missing_required_parameter")


async def test_uploads_are_not_held_to_the_json_body_limit(client: httpx.AsyncClient) -> None:
    # The fast layer's JSON limit is 256 KiB; an upload over it reaches the form
    # checks (here: no purpose) instead of a 413.
    r = await client.post("/v1/files", headers=AUTH, files={"file": ("a.bin", b"x" * 300_000)})
    assert r.status_code == 400
    big_json = await client.post("/v1/chat/completions", headers=AUTH, content=b"x" * 300_000)
    assert big_json.status_code == 413


async def test_openapi_documents_the_files_api(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert set(doc["paths"]["/v1/files"]) == {"get", "post"}
    assert set(doc["paths"]["/v1/files/{file_id}"]) == {"get", "delete"}
    assert set(doc["paths"]["/v1/files/{file_id}/content"]) == {"get"}
    upload = doc["paths"]["/v1/files"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert {"id", "bytes", "filename", "purpose"} <= set(
        doc["components"]["schemas"]["FileObject"]["properties"]
    )
