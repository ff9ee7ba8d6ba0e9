"""Import the history of the legacy Python service (v1 SQLite, v2 SQLite, v2 PostgreSQL)."""

from alert_history.legacy.detect import LegacySource, LegacySourceError, detect
from alert_history.legacy.mapping import Skip, map_classification, map_event, parse_legacy_time
from alert_history.legacy.report import TableCounts
from alert_history.legacy.runner import DEFAULT_BATCH, import_legacy, run_import_command

__all__ = [
    "DEFAULT_BATCH",
    "LegacySource",
    "LegacySourceError",
    "Skip",
    "TableCounts",
    "detect",
    "import_legacy",
    "map_classification",
    "map_event",
    "parse_legacy_time",
    "run_import_command",
]
