"""Filter rules in the database (`alert_filter_rules`): SQL over `Db`, and a read-through cache.

Rules are validated by `parse_rule` on the way in (the API) and again on the way out: a row that
no longer parses is logged and skipped, so one bad row never hides the others (fail open).
A global rule is stored with target_name '' and read back with target_name None.
"""

from __future__ import annotations

import logging
import math

import msgspec
import trio

from alert_history.domain.filter_rules import FilterRule, RuleError, parse_rule
from alert_history.errors import StorageError
from alert_history.storage.base import Storage
from alert_history.storage.executor import Db, Row

log = logging.getLogger("alert_history.rules")

_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode

_UPSERT = """
INSERT INTO alert_filter_rules
    (name, target_name, action, conditions, priority, enabled, delay_seconds, created_at,
     updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name, target_name) DO UPDATE SET
    action = excluded.action, conditions = excluded.conditions, priority = excluded.priority,
    enabled = excluded.enabled, delay_seconds = excluded.delay_seconds,
    updated_at = excluded.updated_at
"""


def list_rules(db: Db) -> list[FilterRule]:
    """Return every valid rule, ordered by target (global first), priority, then name."""
    conditions = "conditions::text" if db.dialect == "postgres" else "conditions"
    rows = db.fetchall(
        f"SELECT name, target_name, action, {conditions}, priority, enabled, delay_seconds "
        "FROM alert_filter_rules ORDER BY target_name, priority, name"
    )
    rules: list[FilterRule] = []
    for row in rows:
        try:
            rules.append(_row_to_rule(row))
        except (RuleError, msgspec.DecodeError) as exc:
            log.warning(
                "invalid filter rule skipped",
                extra={"rule": row[0], "target": row[1] or None, "error": str(exc)},
            )
    return rules


def upsert_rule(db: Db, rule: FilterRule, now: int) -> bool:
    """Insert `rule`, or replace the rule of the same name and target; True if it is new.

    `now` (ns) becomes updated_at, and created_at of a new rule.
    """
    target = rule.target_name or ""
    existed = db.fetchone(
        "SELECT 1 FROM alert_filter_rules WHERE name = ? AND target_name = ?", (rule.name, target)
    )
    db.execute(
        _UPSERT,
        (
            rule.name, target, rule.action, _encode(dict(rule.conditions)).decode(),
            rule.priority, rule.enabled, rule.delay_seconds, now, now,
        ),
    )  # fmt: skip
    return existed is None


def delete_rule(db: Db, name: str, target: str | None) -> bool:
    """Delete the rule `name` of `target` (None: the global one); False if there was none."""
    changed = db.execute(
        "DELETE FROM alert_filter_rules WHERE name = ? AND target_name = ?", (name, target or "")
    )
    return changed > 0


def _row_to_rule(row: Row) -> FilterRule:
    name, target, action, conditions, priority, enabled, delay = row
    data: dict[str, object] = {
        "name": name,
        "action": action,
        "conditions": _decode(conditions),
        "priority": priority,
        # SQLite has no boolean: 0/1 (anything else is left for parse_rule to refuse)
        "enabled": bool(enabled) if enabled in (0, 1) else enabled,
        "delay_seconds": delay,
    }
    if target:
        data["target_name"] = target
    return parse_rule(data)


class RuleBook:
    """The current rules, read through from storage and kept for `max_age` seconds.

    `invalidate()` (after a change through this replica's API) makes the next `current()` reload;
    `max_age` bounds how long another replica's change goes unseen. When a reload fails the last
    rules are kept and the next attempt waits `retry_delay` seconds, so an unreachable database
    costs one failed read per `retry_delay`, not one per call.
    """

    def __init__(self, storage: Storage, *, max_age: float = 5.0, retry_delay: float = 1.0):
        self._storage = storage
        self._max_age = max_age
        self._retry_delay = retry_delay
        self._rules: tuple[FilterRule, ...] | None = None
        self._loaded_at = -math.inf
        self._not_before = -math.inf
        self._wanted = 0  # bumped by invalidate()
        self._loaded = -1  # the `_wanted` value the current rules were read at
        self._lock = trio.Lock()

    def invalidate(self) -> None:
        """Reload on the next `current()`; safe to call from any task of the same trio run."""
        self._wanted += 1
        self._not_before = -math.inf

    async def current(self) -> tuple[FilterRule, ...] | None:
        """Return the rules; None only when they were never read and cannot be now."""
        if not self._due():
            return self._rules
        async with self._lock:
            if not self._due():
                return self._rules
            wanted = self._wanted  # a change committed after this read bumps it again
            try:
                rules = await self._storage.read(list_rules)
            except StorageError as exc:
                log.warning("filter rules not reloaded", extra={"error": str(exc)})
                self._not_before = trio.current_time() + self._retry_delay
                return self._rules
            self._rules = tuple(rules)
            self._loaded = wanted
            self._loaded_at = trio.current_time()
            return self._rules

    def _due(self) -> bool:
        now = trio.current_time()
        if now < self._not_before:
            return False
        return (
            self._rules is None
            or self._loaded != self._wanted
            or now - self._loaded_at >= self._max_age
        )
