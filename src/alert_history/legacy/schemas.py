"""What a legacy table is read as: its columns under the canonical keys of `mapping.py`.

A column the table lacks (older releases added some later) reads as NULL. Keys `seen.N` collect
into the list `seen` and `extra.NAME` into the dict `extra`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["events", "classifications"]


@dataclass(frozen=True)
class Column:
    key: str
    name: str
    cast: str = ""  # PostgreSQL: read as this type (timestamps as text, numerics as float8)


@dataclass(frozen=True)
class Table:
    """One legacy table to import: `kind` says what its rows become, `source` their origin."""

    name: str
    kind: Kind
    source: str
    columns: tuple[Column, ...]
    order: str = '"id"'  # by an indexed column: no sort of the whole table

    def select(self, present: frozenset[str], *, postgres: bool) -> str:
        """The query reading this table in id order; absent columns read as NULL."""
        exprs = []
        for column in self.columns:
            if column.name.lower() not in present:
                exprs.append("NULL")
            elif postgres and column.cast:
                exprs.append(f'"{column.name}"::{column.cast}')
            else:
                exprs.append(f'"{column.name}"')
        order = f" ORDER BY {self.order}" if "id" in present else ""
        return f'SELECT {", ".join(exprs)} FROM "{self.name}"{order}'

    def shape(self, values: Sequence[object]) -> dict[str, object]:
        """The row as a dict under the canonical keys."""
        row: dict[str, object] = {}
        seen: list[object] = []
        extra: dict[str, object] = {}
        for column, value in zip(self.columns, values, strict=True):
            group, _, sub = column.key.partition(".")
            if group == "seen":
                seen.append(value)
            elif group == "extra":
                extra[sub] = value
            else:
                row[column.key] = value
        row["seen"], row["extra"] = seen, extra
        return row


def _columns(*pairs: tuple[str, str] | tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*pair) for pair in pairs)


# v1 (alert_history_service.py): one row per received event; raw_json is the alert as received.
V1_ALERT_HISTORY = Table(
    "alert_history",
    "events",
    "legacy-v1",
    _columns(
        ("id", "id"),
        ("alertname", "alertname"),
        ("fingerprint", "fingerprint"),
        ("status", "status"),
        ("labels", "labels"),
        ("starts_at", "startsAt"),
        ("ends_at", "endsAt"),
        ("seen.0", "updatedAt"),
        ("raw_json", "raw_json"),
        ("namespace", "namespace"),
        ("severity", "severity"),
    ),
)

# v2 SQLiteLegacyStorage: one row per (fingerprint, starts_at), replaced on every update.
V2_SQLITE_ALERTS = Table(
    "alerts",
    "events",
    "legacy-v2",
    _columns(
        ("id", "id"),
        ("fingerprint", "fingerprint"),
        ("alertname", "alertname"),
        ("status", "status"),
        ("labels", "labels"),
        ("annotations", "annotations"),
        ("starts_at", "starts_at"),
        ("ends_at", "ends_at"),
        ("generator_url", "generator_url"),
        ("seen.0", "received_at"),
        ("namespace", "namespace"),
        ("severity", "severity"),
    ),
)
V2_SQLITE_CLASSIFICATIONS = Table(
    "alert_classifications",
    "classifications",
    "legacy-v2",
    _columns(
        ("id", "id"),
        ("fingerprint", "fingerprint"),
        ("severity", "severity"),
        ("confidence", "confidence"),
        ("reasoning", "reasoning"),
        ("recommendations", "recommendations"),
        ("processing_time", "processing_time"),
        ("metadata", "metadata"),
        ("created_at", "created_at"),
    ),
)

# v2 PostgreSQL (postgresql_schema.sql): one row per fingerprint, updated in place.
V2_POSTGRES_ALERTS = Table(
    "alerts",
    "events",
    "legacy-v2",
    _columns(
        ("id", "id"),
        ("fingerprint", "fingerprint"),
        ("alertname", "alert_name"),
        ("namespace", "namespace"),
        ("status", "status"),
        ("labels", "labels"),
        ("annotations", "annotations"),
        ("starts_at", "starts_at", "text"),
        ("ends_at", "ends_at", "text"),
        ("generator_url", "generator_url"),
        ("seen.0", "timestamp", "text"),
        ("seen.1", "created_at", "text"),
        ("seen.2", "updated_at", "text"),
        ("severity", "severity"),
    ),
)
V2_POSTGRES_CLASSIFICATIONS = Table(
    "alert_classifications",
    "classifications",
    "legacy-v2",
    _columns(
        ("id", "id"),
        ("fingerprint", "alert_fingerprint"),
        ("severity", "severity"),
        ("confidence", "confidence", "float8"),
        ("reasoning", "reasoning"),
        ("recommendations", "recommendations"),
        ("processing_time", "processing_time", "float8"),
        ("metadata", "metadata"),
        ("model", "llm_model"),
        ("created_at", "created_at", "text"),
        ("extra.llm_version", "llm_version"),
        ("extra.cache_hit", "cache_hit"),
        ("extra.updated_at", "updated_at", "text"),
        ("extra.expires_at", "expires_at", "text"),
    ),
    # newest first: the one kept per fingerprint is written once, older ones are not written
    order='"created_at" DESC, "id" DESC',
)


def sqlite_tables(columns: Mapping[str, frozenset[str]]) -> tuple[tuple[Table, ...], str]:
    """The legacy tables of a SQLite file (by its tables' lower-case columns) and its label."""
    found: list[Table] = []
    labels: list[str] = []
    if "alert_history" in columns:
        found.append(V1_ALERT_HISTORY)
        labels.append("v1")
    alerts = columns.get("alerts", frozenset())
    if {"starts_at", "received_at"} <= alerts:
        found.append(V2_SQLITE_ALERTS)
        labels.append("v2")
        if "fingerprint" in columns.get("alert_classifications", frozenset()):
            found.append(V2_SQLITE_CLASSIFICATIONS)
    return tuple(found), f"legacy {'+'.join(labels)} SQLite"


def postgres_tables(columns: Mapping[str, frozenset[str]]) -> tuple[tuple[Table, ...], str]:
    """The legacy tables of a PostgreSQL database and its label."""
    if "alert_name" not in columns.get("alerts", frozenset()):
        return (), "legacy v2 PostgreSQL"
    found = [V2_POSTGRES_ALERTS]
    if "alert_fingerprint" in columns.get("alert_classifications", frozenset()):
        found.append(V2_POSTGRES_CLASSIFICATIONS)
    return tuple(found), "legacy v2 PostgreSQL"
