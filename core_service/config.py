"""Core settings, read once from the environment (names as in the README)."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from core_service import machine


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@functools.cache
def machine_capacity() -> machine.MachineCapacity:
    """Measured once per process: the defaults must not move under a running core."""
    return machine.measure()


@dataclass(frozen=True)
class CoreConfig:
    """Everything the core needs to start; built by `from_env` or by tests."""

    data_dir: Path
    database_url: str
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    # Claude Code retries a failing model call up to 10 times with long backoff;
    # capping it lets a model-side failure reach the client within seconds.
    claude_max_retries: int = 2
    # Pre-started Claude Code clients waiting for new conversations.
    pool_size: int = 1
    pool_idle_seconds: float = 300.0
    # A connected session's process is closed after this much idleness.
    session_idle_seconds: float = 600.0
    # Capacity (see `machine` for how the defaults are derived): live Claude
    # Code processes (the pool included), turns running at once, turns waiting
    # for a running slot and for how long, and CLI starts at once.
    max_live_processes: int = field(default_factory=lambda: machine_capacity().max_live_processes)
    max_running_turns: int = field(default_factory=lambda: machine_capacity().max_running_turns)
    max_queued_turns: int = field(default_factory=lambda: machine_capacity().max_queued_turns)
    max_queue_wait_seconds: float = machine.DEFAULT_QUEUE_WAIT_SECONDS
    max_concurrent_starts: int = field(
        default_factory=lambda: machine_capacity().max_concurrent_starts
    )
    # How long SIGTERM lets running turns finish before cancelling them.
    shutdown_grace_seconds: float = 10.0
    # When > 0 (the default for a root core), conversation N's Claude Code runs
    # as uid agent_uid_base + N; 0 runs it as the core's own user.
    agent_uid_base: int = 0
    log_level: str = "info"
    tool_output_excerpt_chars: int = 2000
    # Unified diffs in file-change reports are cut at this many characters.
    diff_limit_chars: int = 20_000
    # Extra names for models, e.g. {"gpt-4o": "claude-sonnet-5"}.
    model_aliases: dict[str, str] = field(default_factory=dict)
    # Hosts sandboxed commands may connect to (through Claude Code's sandbox
    # proxy); loopback and private addresses are refused whatever is listed.
    agent_network_hosts: tuple[str, ...] = ()
    # How long a client tool call waits for its result before the turn is interrupted.
    client_tool_timeout_seconds: float = 900.0
    # Shared secret AdminService callers (the admin site) must present.
    admin_token: str = ""
    # Environment handed to Claude Code unchanged.
    claude_env: dict[str, str] = field(default_factory=dict)

    # Where new conversations' workspaces and homes go: the data dir, unless
    # the agents' uids cannot reach it (see `choose_agent_dir`). None: the data dir.
    agent_dir: Path | None = None

    @property
    def agent_root(self) -> Path:
        return self.agent_dir or self.data_dir

    @property
    def workspaces_dir(self) -> Path:
        return self.agent_root / "workspaces"

    @property
    def homes_dir(self) -> Path:
        return self.agent_root / "homes"

    @classmethod
    def from_env(cls) -> CoreConfig:
        data_dir = Path(os.environ.get("CCAPI_DATA_DIR", "./data")).resolve()
        database_url = os.environ.get("CCAPI_DATABASE_URL") or f"sqlite:///{data_dir / 'ccapi.db'}"
        passthrough = (
            "ANTHROPIC_API_KEY",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "API_TIMEOUT_MS",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "ANTHROPIC_AUTH_TOKEN",
        )
        claude_env = {k: os.environ[k] for k in passthrough if os.environ.get(k)}
        default_uid_base = 2_000_000 if os.geteuid() == 0 else 0
        sized = machine_capacity()
        max_live = max(1, _int("CCAPI_MAX_LIVE_PROCESSES", sized.max_live_processes))
        # A running turn needs a live process: the derived default fits the cap.
        max_running = max(
            1, _int("CCAPI_MAX_RUNNING_TURNS", min(max_live, sized.max_running_turns))
        )
        uid_base = _int("CCAPI_AGENT_UID_BASE", default_uid_base)
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            grpc_host=os.environ.get("CCAPI_GRPC_HOST", "127.0.0.1"),
            grpc_port=_int("CCAPI_GRPC_PORT", 50051),
            claude_max_retries=_int("CLAUDE_CODE_MAX_RETRIES", 2),
            pool_size=_int("CCAPI_POOL_SIZE", 1),
            pool_idle_seconds=_float("CCAPI_POOL_IDLE_SECONDS", 300.0),
            session_idle_seconds=_float("CCAPI_SESSION_IDLE_SECONDS", 600.0),
            shutdown_grace_seconds=_float("CCAPI_SHUTDOWN_GRACE_SECONDS", 10.0),
            max_live_processes=max_live,
            max_running_turns=max_running,
            max_queued_turns=max(
                0, _int("CCAPI_MAX_QUEUED_TURNS", machine.QUEUE_PER_SLOT * max_running)
            ),
            max_queue_wait_seconds=max(
                0.0, _float("CCAPI_MAX_QUEUE_WAIT_SECONDS", machine.DEFAULT_QUEUE_WAIT_SECONDS)
            ),
            max_concurrent_starts=max(
                1, _int("CCAPI_MAX_CONCURRENT_STARTS", sized.max_concurrent_starts)
            ),
            agent_uid_base=uid_base,
            log_level=os.environ.get("CCAPI_LOG_LEVEL", "info").lower(),
            model_aliases=parse_aliases(os.environ.get("CCAPI_MODEL_ALIASES", "")),
            claude_env=claude_env,
            agent_network_hosts=tuple(
                h.strip()
                for h in os.environ.get("CCAPI_AGENT_NETWORK_HOSTS", "").split(",")
                if h.strip()
            ),
            client_tool_timeout_seconds=_float("CCAPI_CLIENT_TOOL_TIMEOUT_SECONDS", 900.0),
            admin_token=os.environ.get("CCAPI_ADMIN_TOKEN", "") or read_admin_token(data_dir),
            agent_dir=choose_agent_dir(data_dir, uid_base > 0),
        )


def parse_aliases(raw: str) -> dict[str, str]:
    """Parses "gpt-4o=claude-sonnet-5,gpt-4o-mini=haiku" into a dict."""
    aliases: dict[str, str] = {}
    for item in raw.split(","):
        if "=" in item:
            name, target = item.split("=", 1)
            if name.strip() and target.strip():
                aliases[name.strip()] = target.strip()
    return aliases


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / "admin-token"


def read_admin_token(data_dir: Path) -> str:
    try:
        return admin_token_path(data_dir).read_text().strip()
    except OSError:
        return ""


# Used when the data dir sits below a folder other users cannot enter (a 0700
# home or temp dir): conversations run as their own uids and must reach their
# workspaces, so those move to a root-owned, traversable place of their own.
FALLBACK_AGENT_ROOT = Path("/var/lib/ccapi/agents")
# In the data dir: where conversations' folders go (first line), and where
# they went before (later lines), decided once so a restart never moves them.
AGENT_DIR_RECORD = "agent-dir"


def traversable_by_others(path: Path) -> bool:
    """True when every folder from / down to `path` lets other users pass."""
    for folder in [path, *path.parents]:
        try:
            if not os.stat(folder).st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue  # not there yet: created 0711 by the core
    return True


def fallback_agent_dir(data_dir: Path) -> Path:
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return FALLBACK_AGENT_ROOT / digest


def recorded_agent_dirs(data_dir: Path) -> list[Path]:
    """The agent roots the record lists, the current one first ([] if none)."""
    try:
        lines = (data_dir / AGENT_DIR_RECORD).read_text().splitlines()
    except OSError:
        return []
    return [Path(line) for line in lines if line.startswith("/")]


def choose_agent_dir(data_dir: Path, isolated: bool) -> Path | None:
    """Where new conversations' folders go (None: the data dir): as set by
    CCAPI_AGENT_DIR, else as recorded at the first start, else decided now."""
    explicit = os.environ.get("CCAPI_AGENT_DIR", "").strip()
    if explicit:
        return Path(explicit).resolve()
    recorded = recorded_agent_dirs(data_dir)
    if recorded:
        return None if recorded[0] == data_dir else recorded[0]
    # The data dir itself is the core's (made 0711 at start, whatever mode a
    # first `ccapi` command created it with); the folders above it decide.
    if not isolated or traversable_by_others(data_dir.parent):
        return None
    return fallback_agent_dir(data_dir)
