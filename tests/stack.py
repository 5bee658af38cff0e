"""Starting real parts of the stack for tests and benchmarks: a `ccapi core`
process wired to the model double, with its own data dir and API key."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_data_dir() -> Path:
    # Not under pytest's 0700 tmp root: the agent's OS user must traverse to it.
    path = Path(tempfile.mkdtemp(prefix="ccapi-test-", dir="/tmp"))
    os.chmod(path, 0o711)
    return path


def ccapi(env: dict[str, str], *args: str, input: str | None = None) -> str:
    """Runs a `ccapi` command (``input`` on its stdin) and returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "core_service.cli", *args],
        input=input,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ccapi {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


@dataclass
class CoreProcess:
    addr: str
    api_key: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    extra_keys: list[str] = field(default_factory=list)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.addr)

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.api_key}"),)

    def admin_metadata(self, actor: str | None = None) -> tuple[tuple[str, str], ...]:
        md = (("x-ccapi-admin-token", self.env["CCAPI_ADMIN_TOKEN"]),)
        return md + ((("x-ccapi-actor", actor),) if actor else ())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def core_env(model_url: str, data_dir: Path, port: int, **overrides: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CCAPI_", "ANTHROPIC_", "CLAUDE"))
    }
    env.update(
        {
            "CCAPI_DATA_DIR": str(data_dir),
            "CCAPI_GRPC_PORT": str(port),
            "ANTHROPIC_BASE_URL": model_url,
            "ANTHROPIC_API_KEY": "test-anthropic-key",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CCAPI_SHUTDOWN_GRACE_SECONDS": "3",
            "CCAPI_ADMIN_TOKEN": "test-admin-token-" + secrets.token_hex(8),
            # Its own Prometheus port: tests run several cores side by side.
            "CCAPI_METRICS_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name, value in overrides.items():
        if value == "":
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_core(model_url: str, data_dir: Path | None = None, **overrides: str) -> CoreProcess:
    return start_core_in(REPO, model_url, data_dir, **overrides)


def start_core_in(
    cwd: Path, model_url: str, data_dir: Path | None = None, **overrides: str
) -> CoreProcess:
    """A core whose working directory is `cwd` (`ccapi serve` run there)."""
    data_dir = data_dir or make_data_dir()
    port = free_port()
    env = core_env(model_url, data_dir, port, **overrides)
    key = ccapi(env, "keys", "create", "--name", "tests").strip().splitlines()[-1]
    log_path = data_dir.parent / f"{data_dir.name}.core.log"
    # Private: at debug level it holds prompts, and agents run as other uids.
    log_path.touch(mode=0o600)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "core_service.cli", "core"],
            env=env,
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    core = CoreProcess(f"127.0.0.1:{port}", key, data_dir, env, process, log_path)
    wait_serving(core)
    return core


def wait_serving(core: CoreProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with core.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if core.process.poll() is not None:
                raise RuntimeError(f"core exited:\n{core.logs()[-3000:]}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"core did not become ready:\n{core.logs()[-3000:]}")


def claude_processes_in(directory: Path) -> list[int]:
    """Pids of processes whose working directory is `directory`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == str(directory):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def within_one_rate_window(seconds_needed: float = 20.0) -> None:
    """Waits, when needed, until the current minute has `seconds_needed` left:
    per-minute limits count in fixed minute windows, and a test that spans two
    windows would see its count start again."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.5)
