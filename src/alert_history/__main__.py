"""Command line: `alert-history serve|migrate|config|import-legacy`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import trio

from alert_history.config import Settings, load_settings, redacted
from alert_history.errors import AlertHistoryError, ConfigError, SupervisorGaveUp
from alert_history.logs import configure_logging

log = logging.getLogger("alert_history")

GIL_SWITCH_INTERVAL = 0.0001  # seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alert-history",
        description="Alert history, intelligence and routing for Prometheus Alertmanager.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML or TOML settings file")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the service (the default)")
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--dry-run", action="store_true", help="list pending migrations only")
    commands.add_parser("config", help="print the effective settings, secrets redacted")
    legacy = commands.add_parser(
        "import-legacy",
        help="import the history of the legacy Python service",
        description="Import alerts and classifications from a legacy alert-history database "
        "(v1 or v2 SQLite file, or v2 PostgreSQL URL) into the configured database. "
        "Rows already imported are skipped, so it can be run again.",
    )
    legacy.add_argument("source", metavar="SOURCE", help="SQLite file or postgresql:// URL")
    legacy.add_argument(
        "--batch", type=_positive_int, default=1000, metavar="N", help="rows per batch (1000)"
    )
    legacy.add_argument(
        "--dry-run", action="store_true", help="read and map everything, write nothing"
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ, args.config)
    except ConfigError as exc:
        print(f"alert-history: invalid configuration: {exc}", file=sys.stderr)
        return 2
    command = args.command or "serve"
    if command == "config":
        print(json.dumps(redacted(settings), indent=2, sort_keys=True))
        return 0
    configure_logging(settings.log.level, json=settings.log.json)
    try:
        if command == "migrate":
            return trio.run(_migrate, settings, args.dry_run)
        if command == "import-legacy":
            try:
                return trio.run(_import_legacy, settings, args)
            except KeyboardInterrupt:
                print("\nalert-history: interrupted; run again to go on", file=sys.stderr)
                return 130
        return _serve(settings)
    except AlertHistoryError as exc:
        log.error("fatal", extra={"error": str(exc), "type": type(exc).__name__})
        return 1


def _serve(settings: Settings) -> int:
    from alert_history.app import run_service  # heavy imports only when serving

    # Storage calls run in worker threads that need the GIL back after every database call;
    # with the default 5 ms switch interval a busy event loop makes each commit wait up to that
    # long per call (bench/RESULTS.md). The loop only yields the GIL when a thread waits for it.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    failed: list[SupervisorGaveUp] = []
    try:
        trio.run(lambda: run_service(settings, handle_signals=True))
    except* SupervisorGaveUp as group:
        failed.extend(e for e in group.exceptions if isinstance(e, SupervisorGaveUp))
    for exc in failed:
        log.error("supervisor gave up", extra={"error": str(exc)})
    return 1 if failed else 0


async def _migrate(settings: Settings, dry_run: bool) -> int:
    from alert_history.storage import open_storage

    storage = await open_storage(settings.database.url, migrate=False, check=False)
    try:
        done = await storage.migrate(dry_run=dry_run)
    finally:
        await storage.aclose()
    verb = "pending" if dry_run else "applied"
    for migration in done:
        print(f"{verb}: {migration.version:04d}_{migration.name}")
    if not done:
        print("schema is up to date")
    return 0


async def _import_legacy(settings: Settings, args: argparse.Namespace) -> int:
    from alert_history.legacy import run_import_command

    db = settings.database
    return await run_import_command(
        args.source,
        database_url=db.url,
        auto_migrate=db.auto_migrate,
        query_timeout=db.query_timeout,
        batch=args.batch,
        dry_run=args.dry_run,
        out=sys.stdout,
        err=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
