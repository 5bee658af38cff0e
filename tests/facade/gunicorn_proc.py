"""Starting `http_facade.server.serve` (gunicorn) as a subprocess for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.facade.fake_core import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Facade:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_facade(
    core_addr: str,
    log: Path,
    workers: int = 2,
    extra_env: Mapping[str, str] | None = None,
    admin_token: str = "",
) -> Facade:
    """A facade in front of ``core_addr``; with the core's ``admin_token`` it
    presents the facade's credential, as under `ccapi serve`."""
    port = free_port()
    env = {
        **os.environ,
        "CCAPI_HOST": "127.0.0.1",
        "CCAPI_HTTP_PORT": str(port),
        "CCAPI_CORE_ADDR": core_addr,
        "CCAPI_HTTP_WORKERS": str(workers),
        "CCAPI_ADMIN_TOKEN": admin_token,
        **(extra_env or {}),
    }
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from http_facade.server import serve; serve()"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    facade = Facade(proc, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(facade.base_url + "/health/live", timeout=1).status_code == 200:
                return facade
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    facade.stop()
    raise RuntimeError(f"gunicorn did not come up: {log.read_text()[-2000:]}")
