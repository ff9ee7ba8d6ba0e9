"""The classifier's SQL over `Db` (both backends): classifications, the queue, the subject.

The durable queue is a query, not a table: firing fingerprints in `alert_current` with no
classification, or with a fallback one made before the LLM came back (`refallback_before`).
The rows are the truth; the classifier's channel only brings new ones sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from alert_history.models import Classification
from alert_history.storage.executor import Db, Row
from alert_history.storage.sql import (
    CLASSIFICATION_FIELDS,
    classification_params,
    decode_map,
    newest_classifications,
    row_to_classification,
)

FIELDS = f"{CLASSIFICATION_FIELDS}, prompt_version, tokens, fallback"
_COLUMNS = {
    "sqlite": FIELDS,
    "postgres": FIELDS.replace("recommendations", "recommendations::text").replace(
        "metadata", "metadata::text"
    ),
}
_UPSERT = f"""
INSERT INTO classifications ({FIELDS}) VALUES ({", ".join(["?"] * 13)})
ON CONFLICT (fingerprint) DO UPDATE SET
    severity = excluded.severity, confidence = excluded.confidence,
    reasoning = excluded.reasoning, recommendations = excluded.recommendations,
    processing_time = excluded.processing_time, metadata = excluded.metadata,
    model = excluded.model, source = excluded.source, created_at = excluded.created_at,
    prompt_version = excluded.prompt_version, tokens = excluded.tokens,
    fallback = excluded.fallback
WHERE excluded.created_at >= classifications.created_at
"""


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """What the LLM is told about one alert: its newest stored state."""

    fingerprint: str
    alertname: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]

    def to_prompt(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
        }


def save_classifications(db: Db, items: Sequence[Classification]) -> int:
    """Store each classification unless a newer one is kept for its fingerprint; return how many."""
    written = 0
    for item in newest_classifications(items):
        params = classification_params([item], jsonb=db.dialect == "postgres")
        params += [item.prompt_version, item.tokens, item.fallback]
        written += db.execute(_UPSERT, params)
    return written


def load_classification(db: Db, fingerprint: str) -> Classification | None:
    row = db.fetchone(
        f"SELECT {_COLUMNS[db.dialect]} FROM classifications WHERE fingerprint = ?", [fingerprint]
    )
    return None if row is None else _to_classification(row)


def load_classifications(db: Db, fingerprints: Sequence[str]) -> dict[str, Classification]:
    if not fingerprints:
        return {}
    marks = ", ".join(["?"] * len(fingerprints))
    rows = db.fetchall(
        f"SELECT {_COLUMNS[db.dialect]} FROM classifications WHERE fingerprint IN ({marks})",
        list(fingerprints),
    )
    return {row[0]: _to_classification(row) for row in rows}


def pending_fingerprints(db: Db, *, refallback_before: int | None, limit: int) -> list[str]:
    """Firing fingerprints to classify: unclassified first, then fallbacks made before
    `refallback_before` (ns; None: none of them), oldest update first."""
    rows = db.fetchall(
        "SELECT a.fingerprint FROM alert_current a"
        " LEFT JOIN classifications c ON c.fingerprint = a.fingerprint"
        " WHERE a.status = 'firing' AND (c.fingerprint IS NULL"
        "  OR (c.fallback = ? AND c.created_at < ?))"
        " ORDER BY CASE WHEN c.fingerprint IS NULL THEN 0 ELSE 1 END, a.updated_at"
        " LIMIT ?",
        [True, -1 if refallback_before is None else refallback_before, limit],
    )
    return [row[0] for row in rows]


def load_subject(db: Db, fingerprint: str) -> Subject | None:
    """The newest stored state of `fingerprint`, or None if it was never seen."""
    if db.dialect == "sqlite":
        labels, annotations = "labels", "annotations"
    else:
        labels = "coalesce(labels_exact, labels::text)"
        annotations = "coalesce(annotations_exact, annotations::text)"
    row = db.fetchone(
        f"SELECT alertname, status, {labels}, {annotations} FROM alert_events"
        " WHERE fingerprint = ? ORDER BY first_seen DESC, id DESC LIMIT 1",
        [fingerprint],
    )
    if row is None:
        return None
    return Subject(
        fingerprint=fingerprint,
        alertname=row[0],
        status=row[1],
        labels=decode_map(row[2]),
        annotations=decode_map(row[3]),
    )


def _to_classification(row: Row) -> Classification:
    base = row_to_classification(row[:10])
    return msgspec.structs.replace(
        base, prompt_version=row[10], tokens=None if row[11] is None else int(row[11])
    )


_CLAIM = """
INSERT INTO classification_claims (fingerprint, owner, until) VALUES (?, ?, ?)
ON CONFLICT (fingerprint) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE classification_claims.until <= ? OR classification_claims.owner = excluded.owner
"""
CLAIMS_KEPT_NS = 3600 * 10**9  # expired leases are deleted an hour after they ended


def claim_classifications(
    db: Db, fingerprints: Sequence[str], *, owner: str, now: int, until: int
) -> list[str]:
    """Take the lease on each of `fingerprints` that is free, expired or `owner`'s already;
    return those taken. In key order, so concurrent claims lock rows in one order."""
    db.execute("DELETE FROM classification_claims WHERE until < ?", [now - CLAIMS_KEPT_NS])
    return [fp for fp in sorted(set(fingerprints)) if db.execute(_CLAIM, [fp, owner, until, now])]
