"""Versioned SQL migrations: `migrations/<backend>/NNNN_name.sql`, recorded with a checksum."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from alert_history.errors import SchemaTooNew, StorageError

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql\Z")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def known_migrations(backend: str) -> list[Migration]:
    """Return the migrations shipped for `backend`, in version order."""
    folder = resources.files("alert_history.storage").joinpath("migrations", backend)
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def pending(known: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """Return what is left to apply; refuse a newer schema or an edited migration."""
    latest = known[-1].version if known else 0
    newer = [v for v in applied if v > latest]
    if newer:
        raise SchemaTooNew(
            f"database schema version {max(newer)} is newer than this code knows ({latest}); "
            "upgrade alert-history or restore a matching database"
        )
    for migration in known:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise StorageError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied (checksum mismatch)"
            )
    return [m for m in known if m.version not in applied]
