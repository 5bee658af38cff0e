"""What operators rely on: the keys CLI, health, reflection, clean shutdown."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import (
    REPO,
    CoreProcess,
    ccapi,
    claude_processes_in,
    core_env,
    free_port,
    make_data_dir,
)

BUF = REPO / ".tools" / "node_modules" / ".bin" / "buf"


def test_keys_cli_creates_lists_and_revokes(core: CoreProcess) -> None:
    out = ccapi(core.env, "keys", "create", "--name", "ci-bot", "--expires-in-days", "30")
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sk-cc-") and " " not in secret
    listing = ccapi(core.env, "keys", "list")
    line = next(row for row in listing.splitlines() if "\tci-bot\t" in row)
    key_id = line.split("\t")[0]
    assert key_id.startswith("key_")
    assert secret not in listing and secret[10:] not in listing
    assert run_turn(core, request("hi"), key=secret).error is None
    assert f"revoked {key_id}" in ccapi(core.env, "keys", "revoke", key_id)
    assert "revoked" in next(
        r for r in ccapi(core.env, "keys", "list").splitlines() if r.startswith(key_id)
    )
    # The secret is never stored in clear.
    assert secret.encode() not in (core.data_dir / "ccapi.db").read_bytes()


def test_secrets_never_reach_the_logs(core: CoreProcess) -> None:
    run_turn(core, request("hi"))
    run_turn(core, request("hi"), key="sk-cc-wrong-secret-for-the-log-test")
    logs = core.logs()
    assert core.api_key not in logs
    assert "sk-cc-wrong-secret-for-the-log-test" not in logs
    assert "test-anthropic-key" not in logs


def test_health_and_reflection_list_every_service(core: CoreProcess) -> None:
    with core.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "claudecode.v1.AgentService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        names = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {
        "claudecode.v1.AgentService",
        "claudecode.v1.ModelService",
        "claudecode.v1.SessionService",
        "grpc.health.v1.Health",
    } <= names


def test_buf_curl_lists_the_methods(core: CoreProcess) -> None:
    if not BUF.exists():
        import pytest

        pytest.skip("buf is installed by `make lint` into .tools/")
    out = subprocess.run(
        [
            str(BUF),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-methods",
            f"http://{core.addr}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "claudecode.v1.AgentService/RunTurn" in out
    assert "claudecode.v1.ModelService/ListModels" in out


def test_serve_prints_a_first_key_and_sigterm_stops_everything(model_double: ModelDouble) -> None:
    data_dir = make_data_dir()
    env = core_env(
        model_double.url,
        data_dir,
        free_port(),
        CCAPI_HTTP_PORT=str(free_port()),
        CCAPI_ADMIN_PORT=str(free_port()),
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "core_service.cli", "serve"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stdout is not None
        secret = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not secret:
            line = serve.stdout.readline().strip()
            if line.startswith("sk-cc-"):
                secret = line
        assert secret
        from tests.stack import CoreProcess as Handle

        core = Handle(
            env=env,
            addr=f"127.0.0.1:{env['CCAPI_GRPC_PORT']}",
            api_key=secret,
            data_dir=data_dir,
            process=serve,  # type: ignore[arg-type]
            log_path=data_dir / "none",
        )
        from tests.stack import wait_serving

        wait_serving(core)
        model_double.script(Reply.hang(60))
        with core.channel() as channel:
            from claudecode.v1 import agent_pb2_grpc

            call = agent_pb2_grpc.AgentServiceStub(channel).RunTurn(
                request("long"), metadata=core.metadata(), timeout=60
            )
            next(call)
            model_double.wait_for_requests(1, timeout=20)
            workspace = Path(model_double.main_requests[0].working_directory or "")
            assert claude_processes_in(workspace)
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(60) == 0
        assert claude_processes_in(workspace) == []
        # A second start with the same data dir does not print a new key.
        again = subprocess.Popen(
            [sys.executable, "-m", "core_service.cli", "serve"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(3)
        again.send_signal(signal.SIGTERM)
        out, _ = again.communicate(timeout=60)
        assert "sk-cc-" not in out
    finally:
        if serve.poll() is None:
            serve.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_users_create_and_db_upgrade(core: CoreProcess) -> None:
    import subprocess as sp

    done = sp.run(
        [
            sys.executable,
            "-m",
            "core_service.cli",
            "users",
            "create",
            "--username",
            "olga",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        input="a sufficiently long password\n",
        env=core.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "olga" in done.stdout and "a sufficiently long password" not in done.stdout
    too_short = sp.run(
        [
            sys.executable,
            "-m",
            "core_service.cli",
            "users",
            "create",
            "--username",
            "short",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input="short\n",
        env=core.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert too_short.returncode != 0 and "at least" in too_short.stderr
    from claudecode.v1 import admin_pb2, admin_pb2_grpc

    with core.channel() as channel:
        user = (
            admin_pb2_grpc.AdminServiceStub(channel)
            .AuthenticateUser(
                admin_pb2.AuthenticateUserRequest(
                    username="olga", password="a sufficiently long password"
                ),
                metadata=core.admin_metadata(),
            )
            .user
        )
    assert user.role == admin_pb2.USER_ROLE_VIEWER
    assert "latest revision" in ccapi(core.env, "db", "upgrade")


def test_a_data_dir_other_users_cannot_enter_still_works(model_double: ModelDouble) -> None:
    """A data dir inside a 0700 folder (root's home, a mktemp dir): the database
    stays there, the conversations' workspaces move where their uids can reach."""
    import tempfile

    from core_service.config import FALLBACK_AGENT_ROOT
    from tests.stack import start_core

    private = Path(tempfile.mkdtemp(prefix="ccapi-private-"))  # 0700
    data_dir = private / "data"
    data_dir.mkdir()
    core = start_core(model_double.url, data_dir=data_dir)
    try:
        model_double.script(
            Reply.tool_use("Write", {"file_path": "{cwd}/hello.txt", "content": "hi"}),
            Reply.text("done"),
        )
        log = run_turn(core, request("write hello.txt"))
        assert log.error is None, log.error
        workspace = Path(model_double.main_requests[0].working_directory or "")
        assert workspace.is_relative_to(FALLBACK_AGENT_ROOT)
        assert (workspace / "hello.txt").read_text() == "hi"
        assert (data_dir / "ccapi.db").exists()
    finally:
        from core_service.config import choose_agent_dir

        fallback = choose_agent_dir(data_dir, True)
        core.stop()
        shutil.rmtree(private, ignore_errors=True)
        if fallback is not None:
            shutil.rmtree(fallback, ignore_errors=True)
