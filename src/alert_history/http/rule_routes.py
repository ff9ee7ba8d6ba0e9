"""Filter rules API (legacy B§3.1): list, create or replace, delete under /proxy/filters/rules.

Rules are stored (`storage.rules`); `rules_changed` is called after every committed change so
this replica's router reloads at once (others reload within the rule cache's max age).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from alert_history.domain.filter_rules import FilterRule, RuleError, parse_rule, rule_to_dict
from alert_history.http.deps import HttpDeps
from alert_history.http.responses import error, field_error, json_response
from alert_history.storage.rules import delete_rule, list_rules, upsert_rule

_decode = msgspec.json.Decoder().decode
_REQUIRED = ("name", "action", "conditions")


def register_rule_routes(
    app: QuartTrio, deps: HttpDeps, *, rules_changed: Callable[[], None] | None = None
) -> None:
    """Add the filter rule routes to `app`; `rules_changed` is told of every change."""

    def changed() -> None:
        if rules_changed is not None:
            rules_changed()

    @app.get("/proxy/filters/rules")
    async def list_filter_rules() -> Response:
        """All rules; `?target_name=x` only those of target x (empty: only the global ones)."""
        rules = await deps.storage.read(list_rules)
        if "target_name" in request.args:
            target = request.args["target_name"] or None
            rules = [rule for rule in rules if rule.target_name == target]
        return json_response({"rules": [rule_to_dict(rule) for rule in rules], "total": len(rules)})

    @app.post("/proxy/filters/rules")
    async def put_filter_rule() -> Response:
        """Create a rule, or replace the one with the same name and target."""
        body = await request.get_data()
        try:
            data = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return field_error(400, "$", f"unreadable JSON: {exc}", "invalid_json")
        try:
            rule = parse_rule(data)
        except RuleError as exc:
            return _rule_error(exc, data)
        nul = _nul_path(data, "$")
        if nul is not None:
            return field_error(422, nul, "must not contain U+0000", "value_error")
        now = int(deps.wall_clock() * 1e9)
        created = await deps.storage.write(lambda db: upsert_rule(db, rule, now))
        changed()
        verb = "added" if created else "updated"
        return json_response(
            {
                "status": "success",
                "message": f"Filter rule {rule.name!r} {verb}{_scope(rule.target_name)}",
                "rule": {**_legacy_summary(rule), **rule_to_dict(rule)},
            }
        )

    @app.delete("/proxy/filters/rules/<path:rule_name>")
    async def delete_filter_rule(rule_name: str) -> Response:
        """Delete a rule; `?target_name=x` names a target's rule (absent or empty: global)."""
        target = request.args.get("target_name") or None
        # no stored name holds U+0000 (refused above), and PostgreSQL cannot even compare one
        stored = "\0" not in rule_name + (target or "")
        deleted = stored and await deps.storage.write(lambda db: delete_rule(db, rule_name, target))
        if not deleted:
            return error(404, f"Filter rule {rule_name!r} not found{_scope(target)}")
        changed()
        return json_response(
            {"status": "success", "message": f"Filter rule {rule_name!r} deleted{_scope(target)}"}
        )


def _scope(target: str | None) -> str:
    return "" if target is None else f" for target {target!r}"


def _legacy_summary(rule: FilterRule) -> dict[str, object]:
    """The legacy response's `rule`: name, action, priority, target."""
    return {
        "name": rule.name,
        "action": rule.action,
        "priority": rule.priority,
        "target": rule.target_name,
    }


def _rule_error(exc: RuleError, data: object) -> Response:
    """422 naming the field as a JSON path, like the webhook's errors (`$.conditions.x`)."""
    if exc.field == "rule":  # the body itself
        return field_error(422, "$", exc.message, "type_error")
    if exc.message == "unknown field":
        kind = "extra_forbidden"
    elif exc.field in _REQUIRED and isinstance(data, Mapping) and exc.field not in data:
        return field_error(422, f"$.{exc.field}", "field required", "missing")
    else:
        kind = "value_error"
    return field_error(422, f"$.{exc.field}", exc.message, kind)


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first string (key or value) holding U+0000, which PostgreSQL cannot store.

    Refused on every backend, so a rule means the same wherever it is stored.
    """
    if isinstance(value, str):
        return path if "\0" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if "\0" in key:
                return where
            found = _nul_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
