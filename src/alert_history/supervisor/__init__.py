"""Generic OTP-style supervision of trio tasks: child specs, strategies, intensity, backoff, health.

`Supervisor` is the one entry point; the rest describes children and reports on them.
"""

from alert_history.supervisor.core import Supervisor
from alert_history.supervisor.health import ChildHealth, ErrorInfo, SupervisorHealth
from alert_history.supervisor.intensity import Backoff, Intensity, RestartWindow, next_attempt
from alert_history.supervisor.spec import (
    BufferStatistics,
    ChildSpec,
    ChildState,
    HasStatistics,
    Restart,
    StartFn,
    Strategy,
)

__all__ = [
    "Backoff",
    "BufferStatistics",
    "ChildHealth",
    "ChildSpec",
    "ChildState",
    "ErrorInfo",
    "HasStatistics",
    "Intensity",
    "Restart",
    "RestartWindow",
    "StartFn",
    "Strategy",
    "Supervisor",
    "SupervisorHealth",
    "next_attempt",
]
