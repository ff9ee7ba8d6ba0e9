"""GET /history/{fingerprint}: one alert's state changes, episodes and flapping state."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from alert_history.domain import format_ns
from alert_history.domain.episodes import Episode, StateChange, Timeline, build_timeline
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
    return {
        "fingerprint": fingerprint,
        "alertname": alertname,
        "labels": labels,
        "status": built.changes[-1].status if built.changes else None,
        "changes": [_change(c) for c in reversed(built.changes)],  # newest first
        "episodes": [_episode(e) for e in reversed(built.episodes)],
        "flapping": {
            "flapping": flap.flapping,
            "changes_in_window": flap.changes_in_window,
            "score": round(flap.score, 3),
            "since": None if flap.since is None else format_ns(int(flap.since * NS)),
        },
    }


def _change(change: StateChange) -> dict[str, object]:
    return {
        "status": change.status,
        "at": format_ns(change.first_seen),
        "startsAt": format_ns(change.starts_at),
        "endsAt": format_ns(change.ends_at),
        "lastSeen": format_ns(change.last_seen),
        "notifyCount": change.notify_count,
    }


def _episode(episode: Episode) -> dict[str, object]:
    return {
        "startsAt": format_ns(episode.starts_at),
        "endsAt": format_ns(episode.ends_at),
        "status": "resolved" if episode.resolved else "firing",
        "duration_seconds": round(episode.duration / NS, 3),
        "notifications": episode.notifications,
        "firstSeen": format_ns(episode.first_seen),
        "lastSeen": format_ns(episode.last_seen),
        "stale": episode.stale,
    }
