"""GET /history/{fingerprint}: one alert's state changes, episodes and flapping state."""

from __future__ import annotations

from functools import partial

from quart import Response
from quart_trio import QuartTrio

from alert_history.domain import format_ns
from alert_history.domain.episodes import Timeline, build_timeline
from alert_history.http.deps import HttpDeps
from alert_history.http.responses import error, json_response
from alert_history.storage.timeline import alert_states

NS = 1_000_000_000


def register_timeline_routes(app: QuartTrio, deps: HttpDeps) -> None:
    @app.get("/history/<fingerprint>")
    async def timeline(fingerprint: str) -> Response:
        states = await deps.storage.read(partial(alert_states, fingerprint=fingerprint))
        if states is None:
            return error(404, f"no alert with fingerprint {fingerprint!r}")
        now = int(deps.wall_clock() * NS)
        built = build_timeline(states.changes, now, stale_after=int(deps.stale_firing_after * NS))
        return json_response(render(fingerprint, states.alertname, states.labels, built))


def render(
    fingerprint: str, alertname: str, labels: dict[str, str], built: Timeline
) -> dict[str, object]:
    flap = built.flapping
    changes, episodes = built.changes, built.episodes
    # a busy alert's timeline shows the same few times over and over (an episode's start on each
    # of its states, a resolution's times): each is formatted once, then looked up
    times = {c.first_seen for c in changes}
    times.update(c.last_seen for c in changes)
    times.update(c.ends_at for c in changes)
    times.update(e.starts_at for e in episodes)  # each change's start is its episode's
    times.update(e.ends_at for e in episodes)
    times.update(e.first_seen for e in episodes)
    times.update(e.last_seen for e in episodes)
    text = {ns: format_ns(ns) for ns in times}
    return {
        "fingerprint": fingerprint,
        "alertname": alertname,
        "labels": labels,
        "status": changes[-1].status if changes else None,
        "changes": [
            {
                "status": c.status,
                "at": text[c.first_seen],
                "startsAt": text[c.starts_at],
                "endsAt": text[c.ends_at],
                "lastSeen": text[c.last_seen],
                "notifyCount": c.notify_count,
            }
            for c in reversed(changes)
        ],  # newest first
        "episodes": [
            {
                "startsAt": text[e.starts_at],
                "endsAt": text[e.ends_at],
                "status": "resolved" if e.resolved else "firing",
                "duration_seconds": round(e.duration / NS, 3),
                "notifications": e.notifications,
                "firstSeen": text[e.first_seen],
                "lastSeen": text[e.last_seen],
                "stale": e.stale,
            }
            for e in reversed(episodes)
        ],
        "flapping": {
            "flapping": flap.flapping,
            "changes_in_window": flap.changes_in_window,
            "score": round(flap.score, 3),
            "since": None if flap.since is None else format_ns(int(flap.since * NS)),
        },
    }
