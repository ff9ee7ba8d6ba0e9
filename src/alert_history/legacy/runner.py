"""`alert-history import-legacy`: stream a legacy database into this service's storage.

Batches are read in a worker thread, mapped, and written with insert-if-absent semantics
(`Storage.import_events`, `Storage.write_classifications`), so an import can be stopped and run
again: what is already stored is left alone and counted as already imported.
"""

from __future__ import annotations

from collections import Counter
from typing import TextIO

import trio

from alert_history.config import redact_url
from alert_history.errors import StorageError
from alert_history.legacy.detect import LegacySource, LegacySourceError, detect
from alert_history.legacy.mapping import Skip, map_classification, map_event
from alert_history.legacy.readers import Batch, Batches, read_batches
from alert_history.legacy.report import Progress, TableCounts, summary
from alert_history.legacy.schemas import Table
from alert_history.models import AlertEvent, Classification
from alert_history.storage import Storage, open_storage

DEFAULT_BATCH = 1000


async def import_legacy(
    source: LegacySource,
    storage: Storage | None,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> list[TableCounts]:
    """Import every table of `source` into `storage`; with storage None only read and map.

    Raises LegacySourceError when the source fails mid-way (counts so far are lost with it:
    run again, nothing is imported twice) and StorageError when the target does.
    """
    kinds = Counter(table.kind for table in source.tables)
    results = []
    for table in source.tables:
        label = table.kind if kinds[table.kind] == 1 else f"{table.kind} ({table.name})"
        counts = TableCounts(label, table.name, dry_run=storage is None)
        results.append(counts)
        await _import_table(source, table, storage, counts, batch, progress)
    if progress is not None:
        progress.finish()
    return results


async def _import_table(
    source: LegacySource,
    table: Table,
    storage: Storage | None,
    counts: TableCounts,
    batch: int,
    progress: Progress | None,
) -> None:
    batches = read_batches(source, table, batch)
    try:
        while (rows := await trio.to_thread.run_sync(_next, batches)) is not None:
            counts.read += len(rows)
            if table.kind == "events":
                events = _events(rows, counts, table.source)
                written = len(events) if storage is None else await storage.import_events(events)
            else:
                # rows of one fingerprint (legacy PostgreSQL kept them all) become one stored
                # row, the newest: the others count as already imported
                items = _classifications(rows, counts)
                written = (
                    len(items) if storage is None else await storage.write_classifications(items)
                )
            counts.written += written
            if progress is not None:
                progress.update(counts)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(batches.close)


def _next(batches: Batches) -> Batch | None:
    return next(batches, None)


def _events(rows: Batch, counts: TableCounts, source: str) -> list[AlertEvent]:
    events = []
    for row in rows:
        mapped = map_event(row, source=source)
        if isinstance(mapped, Skip):
            counts.skip(row.get("id"), mapped)
        else:
            events.append(mapped)
    return events


def _classifications(rows: Batch, counts: TableCounts) -> list[Classification]:
    items = []
    for row in rows:
        mapped = map_classification(row)
        if isinstance(mapped, Skip):
            counts.skip(row.get("id"), mapped)
        else:
            items.append(mapped)
    return items


async def run_import_command(
    source: str,
    *,
    database_url: str,
    auto_migrate: bool,
    query_timeout: float,
    batch: int,
    dry_run: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """The CLI command: 0 on success, 1 if the source or the target cannot be used."""
    try:
        legacy = await trio.to_thread.run_sync(detect, source)
    except LegacySourceError as exc:
        print(f"alert-history: cannot read the legacy database: {exc}", file=err)
        return 1
    target = "nothing (dry run)" if dry_run else redact_url(database_url)
    tables = ", ".join(table.name for table in legacy.tables)
    header = f"{legacy.label} {legacy.display} ({tables}) -> {target}"
    print(f"import-legacy: {header}", file=err, flush=True)
    storage: Storage | None = None
    progress = Progress(err)
    try:
        if not dry_run:
            storage = await open_storage(
                database_url, migrate=auto_migrate, pool_size=2, query_timeout=query_timeout
            )
        results = await import_legacy(legacy, storage, batch=batch, progress=progress)
    except LegacySourceError as exc:
        progress.finish()
        print(f"alert-history: cannot read the legacy database: {exc}", file=err)
        return 1
    except StorageError as exc:
        progress.finish()
        print(f"alert-history: cannot write to {redact_url(database_url)}: {exc}", file=err)
        return 1
    finally:
        progress.finish()
        if storage is not None:
            with trio.CancelScope(shield=True):
                await storage.aclose()
    print(summary(header, results), file=out, flush=True)
    return 0
