"""The actors of the pipeline; each module has one `run(inbox, outbox, *, deps, task_status)`."""

from alert_history.actors import deduplicator, housekeeping, ingest, metrics, router, writer
from alert_history.actors.hooks import Hooks

__all__ = ["Hooks", "deduplicator", "housekeeping", "ingest", "metrics", "router", "writer"]
