"""One small exception hierarchy: every error raised on purpose derives from AlertHistoryError."""

from __future__ import annotations


class AlertHistoryError(Exception):
    """Base of every error raised on purpose by alert-history."""


class ConfigError(AlertHistoryError):
    """Settings are missing, unknown or invalid; `path` names the offending key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class StorageError(AlertHistoryError):
    """The storage backend failed; the operation may be retried later."""


class StorageUnavailable(StorageError):
    """The storage backend cannot be reached."""


class SchemaTooNew(StorageError):
    """The database schema is newer than this code knows."""


class Overloaded(AlertHistoryError):
    """A bounded queue stayed full past its budget; the caller should retry later."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SupervisorGaveUp(AlertHistoryError):
    """A supervisor exceeded its restart intensity and stopped its subtree."""

    def __init__(self, supervisor: str, child: str, cause: BaseException | None) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up after child {child!r} failed: {cause!r}"
        )
        self.supervisor = supervisor
        self.child = child
        self.cause = cause


class SharedStateUnavailable(AlertHistoryError):
    """Redis (shared fast state) did not answer in time; callers degrade, never fail a request."""
