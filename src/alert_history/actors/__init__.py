"""The actors of the pipeline; each module has one `run(inbox, outbox, *, deps, task_status)`."""

from alert_history.actors import (
    classifier,
    deduplicator,
    housekeeping,
    ingest,
    metrics,
    rollup,
    router,
    writer,
)
from alert_history.actors.classification import ClassificationService
from alert_history.actors.hooks import Hooks

__all__ = [
    "ClassificationService",
    "Hooks",
    "classifier",
    "deduplicator",
    "housekeeping",
    "ingest",
    "metrics",
    "rollup",
    "router",
    "writer",
]
