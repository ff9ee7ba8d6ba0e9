"""Filter rules API: /proxy/filters/rules (filled in by issue #4)."""

from __future__ import annotations

from quart_trio import QuartTrio

from alert_history.http.deps import HttpDeps


def register_rule_routes(app: QuartTrio, deps: HttpDeps) -> None:
    """Add the filter rule routes to `app`."""
