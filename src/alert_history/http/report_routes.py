"""GET /report: legacy v1 and v2 analytics (filled in by issue #4)."""

from __future__ import annotations

from quart_trio import QuartTrio

from alert_history.http.deps import HttpDeps


def register_report_routes(app: QuartTrio, deps: HttpDeps) -> None:
    """Add the /report routes to `app`."""
