"""Database failures a caller should hear about plainly: a write refused for
lack of disk space becomes UNAVAILABLE `storage_full` with a retry delay,
instead of an internal error that names SQL."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from core_service.errors import ServiceError, Unavailable

STORAGE_FULL_RETRY_SECONDS = 30
# SQLite says "database or disk is full"; PostgreSQL's class 53100 is disk_full.
_FULL_TEXTS = ("disk is full", "no space left on device", "could not extend file")
_DISK_FULL_SQLSTATE = "53100"


def as_service_error(error: BaseException) -> ServiceError | None:
    """The ServiceError a database failure means to a caller, or None."""
    if not isinstance(error, OperationalError):
        return None
    text = str(error.orig).lower()
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if sqlstate == _DISK_FULL_SQLSTATE or any(t in text for t in _FULL_TEXTS):
        return Unavailable(
            "The service's database has no disk space left; nothing was changed. Try again later.",
            reason="storage_full",
            retry_after_seconds=STORAGE_FULL_RETRY_SECONDS,
        )
    return None
