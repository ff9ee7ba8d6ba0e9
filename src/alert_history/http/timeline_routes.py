"""GET /history/{fingerprint}: one alert's state changes, episodes and flapping state."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from alert_history.domain import format_ns
from alert_history.domain.episodes import StateChange, Timeline, build_timeline
from alert_history.http.deps import HttpDeps
from alert_history.http.responses import error, json_response
from alert_history.storage import Db
from alert_history.storage.timeline import latest_labels, state_changes

NS = 1_000_000_000


def register_timeline_routes(app: QuartTrio, deps: HttpDeps) -> None:
    @app.get("/history/<fingerprint>")
    async def timeline(fingerprint: str) -> Response:
        def read(db: Db) -> tuple[tuple[str, dict[str, str]] | None, list[StateChange]]:
            return latest_labels(db, fingerprint), state_changes(db, fingerprint)

        header, changes = await deps.storage.read(read)
        if header is None:
            return error(404, f"no alert with fingerprint {fingerprint!r}")
        now = int(deps.wall_clock() * NS)
        built = build_timeline(changes, now, stale_after=int(deps.stale_firing_after * NS))
        alertname, labels = header
        return json_response(render(fingerprint, alertname, labels, built))


def render(
    fingerprint: str, alertname: str, labels: dict[str, str], built: Timeline
) -> dict[str, object]:
    flap = built.flapping
    # a busy alert's timeline formats the same few times over and over (an episode's start on
    # each of its states, a resolution's times): each once per response
    formatted: dict[int, str | None] = {}

    def fmt(ns: int) -> str | None:
        text = formatted.get(ns, _MISSING)
        if text is _MISSING:
            text = formatted[ns] = format_ns(ns)
        return text

    return {
        "fingerprint": fingerprint,
        "alertname": alertname,
        "labels": labels,
        "status": built.changes[-1].status if built.changes else None,
        "changes": [
            {
                "status": c.status,
                "at": fmt(c.first_seen),
                "startsAt": fmt(c.starts_at),
                "endsAt": fmt(c.ends_at),
                "lastSeen": fmt(c.last_seen),
                "notifyCount": c.notify_count,
            }
            for c in reversed(built.changes)
        ],  # newest first
        "episodes": [
            {
                "startsAt": fmt(e.starts_at),
                "endsAt": fmt(e.ends_at),
                "status": "resolved" if e.resolved else "firing",
                "duration_seconds": round(e.duration / NS, 3),
                "notifications": e.notifications,
                "firstSeen": fmt(e.first_seen),
                "lastSeen": fmt(e.last_seen),
                "stale": e.stale,
            }
            for e in reversed(built.episodes)
        ],
        "flapping": {
            "flapping": flap.flapping,
            "changes_in_window": flap.changes_in_window,
            "score": round(flap.score, 3),
            "since": None if flap.since is None else format_ns(int(flap.since * NS)),
        },
    }


_MISSING = "\0missing"
