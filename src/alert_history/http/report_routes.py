"""GET /report: the legacy v1 keys, the v2 keys when `days` or `group_by` is given, a summary.

The numbers come from `alert_history.storage.report` (SQL, one snapshot); this module parses
the parameters (a bad one is a 422 naming it) and shapes the JSON.
"""

from __future__ import annotations

from functools import partial

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.datastructures import MultiDict

from alert_history.domain import format_ns
from alert_history.http.deps import HttpDeps
from alert_history.http.history import QueryError, int_param, time_param
from alert_history.http.responses import field_error, json_response
from alert_history.storage.report import Report, ReportQuery, Summary, build_report

MAX_DAYS = 3650


def register_report_routes(app: QuartTrio, deps: HttpDeps) -> None:
    """Add the /report routes to `app`."""

    @app.get("/report")
    async def report() -> Response:
        try:
            query = parse_report_query(request.args, now=int(deps.wall_clock() * 1e9))
        except QueryError as exc:
            return field_error(422, exc.name, exc.message, "value_error")
        result = await deps.storage.read(partial(build_report, query=query))
        return json_response(render_report(result))


def parse_report_query(args: MultiDict[str, str], *, now: int) -> ReportQuery:
    """v1: `alertname, namespace, since, until, min_flap, top`; v2: `days, group_by`."""
    v2 = _present(args, "days") or _present(args, "group_by")
    return ReportQuery(
        now=now,
        alertname=args.get("alertname") or None,
        namespace=args.get("namespace") or None,
        since=time_param(args, "since"),
        until=time_param(args, "until"),
        min_flap=int_param(args, "min_flap", 2, 1, 100),
        top=int_param(args, "top", 10, 1, 100),
        days=int_param(args, "days", 7, 1, MAX_DAYS) if v2 else None,
        group_by=args.get("group_by") or "alertname",
    )


def render_report(report: Report) -> dict[str, object]:
    """The v1 keys first and exactly as v1 named them, then the summary, then the v2 keys."""
    body: dict[str, object] = {**report.v1, "summary": _render_summary(report.summary)}
    if report.v2 is not None:
        body.update(report.v2)
    return body


def _render_summary(summary: Summary) -> dict[str, object]:
    period = summary["period"]
    return {
        **summary,
        "period": {
            "since": None if period["since"] is None else format_ns(period["since"]),
            "until": format_ns(period["until"]),
            "hours": period["hours"],
        },
    }


def _present(args: MultiDict[str, str], name: str) -> bool:
    return bool(args.get(name))
