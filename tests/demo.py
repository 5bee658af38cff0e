"""`make demo`: the whole service wired to the model double, no Claude account needed.

Starts the model double's demo model (`python -m tests.model_double`) and
`ccapi serve` with ANTHROPIC_BASE_URL pointing at it, data in ./data-demo,
prints the base URL, an API key and examples, and runs until Ctrl-C.

Environment: CCAPI_HTTP_PORT (default 8000), CCAPI_ADMIN_PORT (8001),
CCAPI_GRPC_PORT (50051), DEMO_MODEL_PORT (8787), DEMO_DATA_DIR (./data-demo).
A default port that is taken is replaced by a free one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 20.0
READY_TIMEOUT_S = 120.0
KEY_HEADLINE = "created API key"


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (the part stops its own children), then its whole group goes."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop in {STOP_GRACE_S:.0f} s; killing it")
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything it left behind
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers bind: connections of a previous run in TIME_WAIT don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick_port(env_name: str, default: int) -> int:
    """The port the environment names (used as is), else the default when free, else any."""
    raw = os.environ.get(env_name, "").strip()
    if raw:
        return int(raw)
    if port_free(default):
        return default
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    print(f"port {default} is taken; using {port} instead (set {env_name} to choose)")
    return port


def spawn(name: str, argv: list[str], env: dict[str, str], log_path: Path) -> Child:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own group: Ctrl-C reaches only us, and we stop the children in order.
            start_new_session=True,
        )
    return Child(name, process, log_path)


def wait_until(what: str, check: Callable[[], bool], children: list[Child]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        for child in children:
            if not child.alive():
                tail = child.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{child.name} exited while waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def first_start_lines(log_path: Path) -> list[str]:
    """What `ccapi serve` printed for people before starting its parts (the
    first API key on an empty database), without its JSON logs."""
    lines = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.lstrip().startswith("{"):
            if '"started part"' in line:
                break
            continue
        if line.strip():
            lines.append(line)
    return lines


def key_from(lines: list[str]) -> str | None:
    for i, line in enumerate(lines[:-1]):
        if KEY_HEADLINE in line:
            return lines[i + 1].strip()
    return None


def create_key(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "core_service.cli", "keys", "create", "--name", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def try_it(base_url: str, key: str, attempts: int = 3) -> str:
    """One real turn through the whole stack, so the demo is known to work.
    Returns the answer, or what went wrong."""
    outcome = ""
    for attempt in range(1, attempts + 1):
        try:
            reply = httpx.post(
                f"{base_url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "sonnet", "messages": [{"role": "user", "content": "Hello!"}]},
                timeout=120,
            )
        except httpx.HTTPError as error:
            outcome = f"{type(error).__name__}: {error}"
        else:
            if reply.status_code == 200:
                return repr(reply.json()["choices"][0]["message"]["content"])
            outcome = f"HTTP {reply.status_code} {reply.text[:300]}"
        print(f"  check turn {attempt}/{attempts} failed: {outcome}", flush=True)
        time.sleep(1)
    return f"FAILED ({outcome}); see serve.log"


def instructions(
    base_url: str, admin_url: str, key: str, key_note: str, data_dir: Path, answer: str
) -> str:
    chat = json.dumps(
        {
            "model": "sonnet",
            "stream": True,
            "messages": [{"role": "user", "content": 'create file hello.txt containing "hi"'}],
        }
    )
    return f"""
================================================================================
 claudecode-api demo is running (Claude Code against a scripted stand-in model)
================================================================================

 Base URL (OpenAI-compatible):  {base_url}/v1
 API key:                       {key}
                                ({key_note})

 Admin site:                    {admin_url}  (user admin; its first-start password
                                is printed by serve above, or use `ccapi users create`)

 Self-check: "Hello!" was answered with: {answer}

 The demo model echoes you; "create file NAME" (optionally 'containing "text"')
 makes Claude Code really write the file in the conversation's workspace.

 curl:
   curl -N {base_url}/v1/chat/completions \\
     -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
     -d '{chat}'

 openai SDK (pip install openai):
   from openai import OpenAI
   client = OpenAI(base_url="{base_url}/v1", api_key="{key}")
   stream = client.chat.completions.create(
       model="sonnet", stream=True,
       messages=[{{"role": "user", "content": "create file notes.md containing \\"todo\\""}}],
   )
   for chunk in stream:
       print(chunk.choices[0].delta.content or "", end="", flush=True)

 Models: curl {base_url}/v1/models -H 'Authorization: Bearer {key}'
 Data and logs: {data_dir} (serve.log, model-double.log)

 Press Ctrl-C to stop everything.
================================================================================
""".rstrip()


def main() -> int:
    http_port = pick_port("CCAPI_HTTP_PORT", 8000)
    admin_port = pick_port("CCAPI_ADMIN_PORT", 8001)
    grpc_port = pick_port("CCAPI_GRPC_PORT", 50051)
    model_port = pick_port("DEMO_MODEL_PORT", 8787)
    data_dir = Path(os.environ.get("DEMO_DATA_DIR", "") or REPO / "data-demo").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)  # Claude Code runs as per-conversation users and must get in
    first_start = not (data_dir / "ccapi.db").exists()
    model_url = f"http://127.0.0.1:{model_port}"
    base_url = f"http://127.0.0.1:{http_port}"

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CCAPI_", "ANTHROPIC_", "CLAUDE"))
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "CCAPI_DATA_DIR": str(data_dir),
            "CCAPI_HTTP_PORT": str(http_port),
            "CCAPI_ADMIN_PORT": str(admin_port),
            "CCAPI_GRPC_PORT": str(grpc_port),
            "ANTHROPIC_BASE_URL": model_url,
            "ANTHROPIC_API_KEY": "demo-not-a-real-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }
    )

    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    # Both explicitly: a job started in the background by a script inherits an
    # ignored SIGINT, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children: list[Child] = []
    exit_code = 0
    try:
        print(f"starting the model double on {model_url} ...", flush=True)
        model_argv = [sys.executable, "-m", "tests.model_double", "--port", str(model_port)]
        children.append(spawn("model double", model_argv, env, data_dir / "model-double.log"))
        serve_log = data_dir / "serve.log"
        serve_log.write_bytes(b"")  # this start's output only
        wait_until("the model double", lambda: not port_free(model_port), children)

        print(f"starting ccapi serve (data in {data_dir}) ...", flush=True)
        serve_argv = [sys.executable, "-m", "core_service.cli", "serve"]
        children.append(spawn("ccapi serve", serve_argv, env, serve_log))
        wait_until("the HTTP API", lambda: http_ok(f"{base_url}/health/ready"), children)

        said = first_start_lines(serve_log)
        key = key_from(said)
        if said:
            print("ccapi serve said:")
            for line in said:
                print(f"  | {line}")
        key_note = "the first key of this data dir, shown only once: keep it"
        if key is None:
            if first_start:
                print("warning: serve printed no API key on an empty data dir; creating one")
            key = create_key(env)  # a later start: the first key was shown once, long ago
            key_note = "a new key for this start; earlier demo keys keep working"

        print("checking a turn end to end ...", flush=True)
        answer = try_it(base_url, key)
        admin_url = f"http://127.0.0.1:{admin_port}"
        print(instructions(base_url, admin_url, key, key_note, data_dir, answer), flush=True)

        while not stopping:
            time.sleep(0.5)
            for child in children:
                if not child.alive():
                    print(
                        f"\n{child.name} exited ({child.process.returncode}); see {child.log_path}"
                    )
                    exit_code = 1
                    stopping = True
    except KeyboardInterrupt:
        print()
    except (RuntimeError, httpx.HTTPError, subprocess.CalledProcessError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        exit_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan anything
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping ...", flush=True)
        for child in reversed(children):  # the service first, then the model it talks to
            child.stop()
            print(f"  {child.name} stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
