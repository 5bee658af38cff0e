"""FileService over gRPC against the real core: the upload stream's protocol
(nothing is kept unless it ends properly), and an agent cannot read the
stored bytes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ccapi_client.metadata import UPLOAD_REFUSED_HEADER
from claudecode.v1 import files_pb2 as pb
from claudecode.v1 import files_pb2_grpc
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess

SECRET = b"uploaded secret 7f3a\n"


def _start(name: str = "a.txt") -> pb.UploadFileRequest:
    return pb.UploadFileRequest(start=pb.UploadFileStart(filename=name, purpose="user_data"))


def _upload(core: CoreProcess, *messages: pb.UploadFileRequest) -> pb.UploadFileResponse:
    with core.channel() as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        got: pb.UploadFileResponse = stub.UploadFile(
            iter(messages), metadata=core.metadata(), timeout=30
        )
        return got


def _listed(core: CoreProcess) -> list[str]:
    with core.channel() as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        got = stub.ListFiles(pb.ListFilesRequest(), metadata=core.metadata(), timeout=10)
        return [f.id for f in got.files]


@pytest.fixture
def stored(core: CoreProcess) -> Iterator[pb.StoredFile]:
    got = _upload(
        core,
        _start("secret.txt"),
        pb.UploadFileRequest(chunk=SECRET),
        pb.UploadFileRequest(end=pb.UploadFileEnd(total_bytes=len(SECRET))),
    )
    yield got.file
    with core.channel() as channel:
        files_pb2_grpc.FileServiceStub(channel).DeleteFile(
            pb.DeleteFileRequest(file_id=got.file.id), metadata=core.metadata(), timeout=10
        )


def test_content_streams_back_in_order(core: CoreProcess, stored: pb.StoredFile) -> None:
    with core.channel() as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        messages = list(
            stub.GetFileContent(
                pb.GetFileContentRequest(file_id=stored.id), metadata=core.metadata(), timeout=10
            )
        )
    assert messages[0].file.id == stored.id and messages[0].file.bytes == len(SECRET)
    assert b"".join(m.chunk for m in messages) == SECRET
    assert stored.sha256 and stored.media_type == ""


@pytest.mark.parametrize(
    "messages",
    [
        # No start.
        [pb.UploadFileRequest(chunk=b"abc")],
        # Two starts.
        [_start(), _start()],
        # The stream just stops: a cut-off upload.
        [_start(), pb.UploadFileRequest(chunk=b"abc")],
        # Fewer bytes than the end says.
        [
            _start(),
            pb.UploadFileRequest(chunk=b"abc"),
            pb.UploadFileRequest(end=pb.UploadFileEnd(total_bytes=4)),
        ],
    ],
    ids=["no-start", "two-starts", "no-end", "short"],
)
def test_a_broken_upload_stream_keeps_nothing(
    core: CoreProcess, messages: list[pb.UploadFileRequest]
) -> None:
    before = _listed(core)
    with pytest.raises(grpc.RpcError) as refused:
        _upload(core, *messages)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _listed(core) == before
    assert not list((core.data_dir / "files" / "incoming").iterdir())
    # Announced in the headers first, so a client still writing can stop.
    assert (UPLOAD_REFUSED_HEADER, "1") in refused.value.initial_metadata()  # type: ignore[attr-defined]


def test_an_agent_cannot_read_an_uploaded_file(
    core: CoreProcess, model_double: ModelDouble, stored: pb.StoredFile
) -> None:
    path = core.data_dir / "files" / stored.id
    assert path.read_bytes() == SECRET
    model_double.script(
        Reply.tool_use("Bash", {"command": f"cat {path}", "description": "x"}),
        Reply.tool_use("Read", {"file_path": str(path)}),
        Reply.tool_use("Bash", {"command": f"ls {path.parent}", "description": "x"}),
        Reply.text("ok"),
    )
    log = run_turn(core, request("read the upload"), timeout=120)
    assert log.error is None, log.error
    seen = [
        str(block.get("content"))
        for sent in model_double.main_requests[1:]
        for block in sent.last_tool_results
    ]
    assert len(seen) == 3
    assert not any("uploaded secret" in text for text in seen), seen
    # Claude Code's deny rule for the files folder refuses the commands and the
    # Read tool (behind it, the OS would: the folder is 0700 to the core's user,
    # and our permission callback refuses paths outside the workspace).
    assert all("denied" in text.lower() for text in seen), seen


def test_reflection_and_health_know_the_service(core: CoreProcess) -> None:
    with core.channel() as channel:
        names = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="claudecode.v1.FileService"), timeout=5
        )
    assert "claudecode.v1.FileService" in names
    assert health.status == health_pb2.HealthCheckResponse.SERVING
