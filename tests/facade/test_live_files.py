"""Live: the Files API through gunicorn and the real core, with the official
openai SDK: upload, list, retrieve, download, delete; key scoping; the live
size limit; bad input."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator

import httpx
import openai
import pytest
from google.protobuf import field_mask_pb2

from claudecode.v1 import admin_pb2, admin_pb2_grpc
from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess
from tests.stack import ccapi


@pytest.fixture(scope="module")
def other_sdk(facade: Facade, core: CoreProcess) -> Iterator[openai.OpenAI]:
    key = ccapi(core.env, "keys", "create", "--name", "files-other").strip().splitlines()[-1]
    client = openai.OpenAI(base_url=facade.base_url + "/v1", api_key=key, max_retries=0)
    yield client
    client.close()


def _set_max_file_bytes(core: CoreProcess, value: int) -> None:
    with core.channel() as channel:
        admin_pb2_grpc.AdminServiceStub(channel).UpdateConfig(
            admin_pb2.UpdateConfigRequest(
                config=admin_pb2.LiveConfig(max_file_bytes=value),
                update_mask=field_mask_pb2.FieldMask(paths=["max_file_bytes"]),
            ),
            metadata=core.admin_metadata(),
        )


def test_upload_list_retrieve_download_delete(sdk: openai.OpenAI, core: CoreProcess) -> None:
    data = b"name,qty\nbolts,12\nnuts,30\n"
    created = sdk.files.create(file=("stock.csv", data, "text/csv"), purpose="user_data")
    assert created.id.startswith("file-")
    assert (created.object, created.filename, created.purpose) == ("file", "stock.csv", "user_data")
    assert created.bytes == len(data)
    # Kept for the live retention (30 days by default).
    assert created.expires_at == created.created_at + 30 * 86400

    assert sdk.files.retrieve(created.id) == created
    assert sdk.files.content(created.id).content == data
    listed = [f.id for f in sdk.files.list()]
    assert created.id in listed
    assert created.id in [f.id for f in sdk.files.list(purpose="user_data")]
    assert created.id not in [f.id for f in sdk.files.list(purpose="vision")]

    # The bytes sit in the core's data dir, private, and go with the delete.
    blob = core.data_dir / "files" / created.id
    assert blob.read_bytes() == data
    assert stat.S_IMODE(blob.stat().st_mode) == 0o600
    assert stat.S_IMODE((core.data_dir / "files").stat().st_mode) == 0o700

    deleted = sdk.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    assert not blob.exists()
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.files.retrieve(created.id)
    assert missing.value.body["param"] == "file_id"  # type: ignore[index]
    assert created.id not in [f.id for f in sdk.files.list()]


def test_list_pages_in_order(sdk: openai.OpenAI) -> None:
    ids = [
        sdk.files.create(file=(f"page{i}.txt", b"x", "text/plain"), purpose="assistants").id
        for i in range(3)
    ]
    try:
        newest_first = [f.id for f in sdk.files.list(purpose="assistants", limit=100)]
        assert [i for i in newest_first if i in ids] == ids[::-1]
        page = sdk.files.list(purpose="assistants", order="asc", limit=2, after=ids[0])
        assert [f.id for f in page.data][:2] == ids[1:]
        first = sdk.files.list(purpose="assistants", order="asc", limit=1, after=ids[0])
        assert first.has_more and [f.id for f in first.data] == [ids[1]]
        # The SDK's auto-pagination follows `after` through every page.
        walked = [f.id for f in sdk.files.list(purpose="assistants", order="asc", limit=1)]
        assert [i for i in walked if i in ids] == ids
    finally:
        for file_id in ids:
            sdk.files.delete(file_id)


def test_large_file_streams_in_chunks_both_ways(sdk: openai.OpenAI) -> None:
    # Over the 4 MiB gRPC message default and over the facade's 10 MiB JSON body limit.
    data = os.urandom(12 * 1024 * 1024 + 17)
    created = sdk.files.create(file=("blob.bin", data), purpose="assistants")
    try:
        assert created.bytes == len(data)
        got = sdk.files.content(created.id).content
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    finally:
        sdk.files.delete(created.id)


def test_another_key_cannot_see_read_or_delete_it(
    sdk: openai.OpenAI, other_sdk: openai.OpenAI
) -> None:
    created = sdk.files.create(file=("secret.txt", b"mine", "text/plain"), purpose="user_data")
    try:
        assert created.id not in [f.id for f in other_sdk.files.list()]
        for attempt in (
            lambda: other_sdk.files.retrieve(created.id),
            lambda: other_sdk.files.content(created.id),
            lambda: other_sdk.files.delete(created.id),
        ):
            with pytest.raises(openai.NotFoundError) as refused:
                attempt()
            assert refused.value.body["param"] == "file_id"  # type: ignore[index]
        # Still there for its owner.
        assert sdk.files.content(created.id).content == b"mine"
    finally:
        sdk.files.delete(created.id)


def test_over_the_live_size_limit_is_413(
    sdk: openai.OpenAI, core: CoreProcess, facade: Facade
) -> None:
    _set_max_file_bytes(core, 4096)
    try:
        with pytest.raises(openai.APIStatusError) as refused:
            sdk.files.create(file=("big.bin", b"x" * 5000), purpose="assistants")
        assert refused.value.status_code == 413
        assert refused.value.body["code"] == "file_too_large"  # type: ignore[index]
        # A declared body far over the limit is refused before the bytes stream,
        # every time: the refusal used to land while the facade was still
        # writing, and grpcio then reported INTERNAL (a 500, about 1 in 15).
        # Over the core's 8 MiB drain, so the facade must stop on its header.
        huge = b"y" * 12_000_000
        for _ in range(25):
            with pytest.raises(openai.APIStatusError) as early:
                sdk.files.create(file=("huge.bin", huge), purpose="assistants")
            assert early.value.status_code == 413
            assert early.value.body["code"] == "file_too_large"  # type: ignore[index]
        # Exactly at the limit is fine.
        ok = sdk.files.create(file=("edge.bin", b"z" * 4096), purpose="assistants")
        sdk.files.delete(ok.id)
        # Nothing half-written stays behind.
        assert not list((core.data_dir / "files" / "incoming").iterdir())
    finally:
        _set_max_file_bytes(core, 100 * 1024 * 1024)


def test_bad_purpose_and_bad_forms_are_400(
    sdk: openai.OpenAI, core: CoreProcess, facade: Facade
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.files.create(file=("a.txt", b"a"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as foreign:
        sdk.files.create(file=("a.jsonl", b"{}"), purpose="batch")
    assert foreign.value.body["param"] == "purpose"  # type: ignore[index]
    assert "not supported" in foreign.value.message

    auth = {"Authorization": f"Bearer {core.api_key}"}
    url = facade.base_url + "/v1/files"
    # A multipart form with the purpose field alone.
    missing_file = httpx.post(url, headers=auth, files={"purpose": (None, "user_data")})
    assert missing_file.status_code == 400
    assert missing_file.json()["error"]["param"] == "file"
    unknown = httpx.post(
        url, headers=auth, data={"purpose": "user_data", "colour": "red"}, files={"file": b"a"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "colour"
    # A field after the file: refused, and the streamed bytes are not kept.
    before = [f.id for f in sdk.files.list()]
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n"
        b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nlate\r\n--b--\r\n'
    )
    late = httpx.post(
        url, headers={**auth, "Content-Type": "multipart/form-data; boundary=b"}, content=body
    )
    assert late.status_code == 400 and late.json()["error"]["param"] == "note"
    assert [f.id for f in sdk.files.list()] == before
    as_json = httpx.post(url, headers=auth, json={"purpose": "user_data"})
    assert as_json.status_code == 400
    bad_limit = httpx.get(url, headers=auth, params={"limit": "0"})
    assert bad_limit.status_code == 400 and bad_limit.json()["error"]["param"] == "limit"
    bad_order = httpx.get(url, headers=auth, params={"order": "sideways"})
    assert bad_order.status_code == 400 and bad_order.json()["error"]["param"] == "order"
    assert httpx.get(url).status_code == 401
    # The upload stream is authenticated before the core reads any byte, and
    # is a 401 every time (the refusal once raced the facade's writes: a 500).
    for _ in range(8):  # under the wrong-key throttle's burst
        anonymous = httpx.post(url, files={"purpose": (None, "user_data"), "file": b"a"})
        assert anonymous.status_code == 401


def test_expires_after_is_honoured(sdk: openai.OpenAI) -> None:
    created = sdk.files.create(
        file=("soon.txt", b"s"),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    try:
        assert created.expires_at == created.created_at + 3600
    finally:
        sdk.files.delete(created.id)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.files.create(
            file=("soon.txt", b"s"),
            purpose="user_data",
            expires_after={"anchor": "created_at", "seconds": 5},
        )
    assert bad.value.body["param"] == "expires_after.seconds"  # type: ignore[index]
