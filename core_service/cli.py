"""The `ccapi` command. Logging is configured before the servers are imported."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

# The core forks to start Claude Code as other uids while gRPC threads run;
# gRPC's fork handlers then crash the child now and then (SIGSEGV before exec).
# The child execs at once and needs no gRPC, so the handlers are turned off.
# Set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

if TYPE_CHECKING:
    from core_service.config import CoreConfig
    from core_service.keys import KeyStore


def _config() -> CoreConfig:
    from core_service.config import CoreConfig

    return CoreConfig.from_env()


def _key_store() -> KeyStore:
    from core_service.db.engine import make_engine, make_sessionmaker
    from core_service.db.migrations import upgrade
    from core_service.keys import KeyStore

    config = _config()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.database_url)
    return KeyStore(make_sessionmaker(make_engine(config.database_url)))


def cmd_core(_args: argparse.Namespace) -> int:
    from core_service import logging_setup

    config = _config()
    logging_setup.configure(config.log_level)
    from core_service.server import serve

    asyncio.run(serve(config))
    return 0


def cmd_serve(_args: argparse.Namespace) -> int:
    from core_service import logging_setup

    config = _config()
    logging_setup.configure(config.log_level)
    from core_service.supervisor import run_all

    return run_all(config)


def cmd_http(_args: argparse.Namespace) -> int:
    from http_facade.server import serve

    serve()
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from core_service.db.migrations import upgrade

    config = _config()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.database_url)
    print("database is at the latest revision")
    return 0


def _builtin_default(value: str) -> bool | tuple[str, ...]:
    if value.strip().lower() in ("", "none"):
        return False
    if value.strip().lower() == "all":
        return True
    return tuple(_split(value))


def cmd_keys_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from core_service.keys import KeyLimits, KeySpec

    expires = (
        datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    )
    spec = KeySpec(
        name=args.name,
        limits=KeyLimits(
            rpm=args.rpm,
            tpm=args.tpm,
            max_concurrent=args.max_concurrent,
            budget_usd=args.budget_usd,
            budget_period=args.budget_period,
        ),
        allowed_models=tuple(_split(args.models)),
        allowed_tools=tuple(_split(args.tools)),
        expires_at=expires,
        builtin_tools_default=_builtin_default(args.builtin_tools),
    )
    try:
        info, secret = _key_store().create(args.name, spec=spec)
    except ValueError as error:
        print(f"invalid key settings: {error}", file=sys.stderr)
        return 2
    print(f"created key {info.id} ({info.name})")
    if info.expires_at:
        print(f"expires {info.expires_at.isoformat()}")
    print("the secret is shown once; store it now:")
    print(secret)
    return 0


def _split(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


def cmd_users_create(args: argparse.Namespace) -> int:
    from core_service.db.engine import make_engine, make_sessionmaker
    from core_service.db.migrations import upgrade
    from core_service.errors import ServiceError
    from core_service.users import UserStore

    if not args.password_stdin:
        print("pass the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n")
    config = _config()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.database_url)
    users = UserStore(make_sessionmaker(make_engine(config.database_url)))
    try:
        user = users.create(args.username, args.role, password)
    except ServiceError as error:
        print(error.message, file=sys.stderr)
        return 2
    print(f"created {user.role} {user.username}")
    return 0


def cmd_admin(_args: argparse.Namespace) -> int:
    from admin_web.server import serve

    serve()
    return 0


def cmd_keys_list(_args: argparse.Namespace) -> int:
    for info in _key_store().all():
        state = "revoked" if info.revoked_at else ("expired" if not info.usable() else "active")
        expires = info.expires_at.isoformat() if info.expires_at else "never"
        used = info.last_used_at.isoformat() if info.last_used_at else "never"
        print(
            f"{info.id}\t{info.name}\t{info.prefix}...\t{state}\texpires={expires}\tlast_used={used}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if not _key_store().revoke(args.id):
        print(f"no key {args.id}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccapi", description="Claude Code behind OpenAI and gRPC APIs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run core, HTTP facade and admin site").set_defaults(
        func=cmd_serve
    )
    sub.add_parser("core", help="run the gRPC core alone").set_defaults(func=cmd_core)
    sub.add_parser("http", help="run the OpenAI-compatible HTTP facade alone").set_defaults(
        func=cmd_http
    )

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key; prints the secret on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--expires-in-days", type=float, default=None)
    create.add_argument("--rpm", type=int, default=0, help="requests per minute (0: unlimited)")
    create.add_argument("--tpm", type=int, default=0, help="tokens per minute (0: unlimited)")
    create.add_argument("--max-concurrent", type=int, default=0, help="turns at once")
    create.add_argument("--budget-usd", type=float, default=0.0, help="spend per budget period")
    create.add_argument("--budget-period", choices=("day", "month", "total"), default="month")
    create.add_argument("--models", help="comma-separated models the key may use")
    create.add_argument("--tools", help="comma-separated Claude Code tools, e.g. Read,Grep,Glob")
    create.add_argument(
        "--builtin-tools",
        default="none",
        help="Claude Code's built-ins beside a request's own tools when it does not say: "
        "none (default), all (the key's tools) or comma-separated names",
    )
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="one line per key, id first").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_keys_revoke)

    sub.add_parser("admin", help="run the admin site alone").set_defaults(func=cmd_admin)
    users = sub.add_parser("users", help="admin-site users").add_subparsers(
        dest="users_command", required=True
    )
    user_create = users.add_parser("create", help="create an admin-site user")
    user_create.add_argument("--username", required=True)
    user_create.add_argument("--role", choices=("admin", "viewer"), required=True)
    user_create.add_argument("--password-stdin", action="store_true")
    user_create.set_defaults(func=cmd_users_create)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(0o077)  # everything the service writes is private by default
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
