"""The Alertmanager v4 bodies sent by the load generator.

Both are templates: every `startsAt` value is `PLACEHOLDER`, which post.lua fills with the
captured timestamp (a repeat notification of the same alert state: the service folds it into
`notify_count`) or with a timestamp unique to that request (a new alert episode: new rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alert_history.domain.fingerprint import fingerprint

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "alertmanager"
PLACEHOLDER = "@@T@@"


@dataclass(frozen=True)
class Payload:
    key: str
    alerts: int
    template: str
    starts_at: str
    #: every Nth request is a new episode (unique startsAt); 1 = all, 0 = none
    unique_every: int
    description: str

    @property
    def body(self) -> bytes:
        """The body of a repeat notification (the captured startsAt)."""
        return self.template.replace(PLACEHOLDER, self.starts_at).encode()

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.key}.template.json"
        path.write_text(self.template, encoding="utf-8")
        return path

    def mix(self) -> str:
        if self.unique_every == 1:
            return "every request is a new episode (unique startsAt): insert path"
        if self.unique_every == 0:
            return "every request identical: repeat path (notify_count += 1)"
        share = 100 / self.unique_every
        return (
            f"{100 - share:g} % identical bodies (repeat path, notify_count += 1), "
            f"{share:g} % new episodes (unique startsAt, insert path)"
        )


def _single() -> tuple[str, dict[str, object]]:
    raw = (FIXTURES / "single.json").read_text(encoding="utf-8")
    return raw, json.loads(raw)


def one_alert(unique_every: int) -> Payload:
    """tests/fixtures/alertmanager/single.json, byte for byte, startsAt templated."""
    raw, doc = _single()
    alerts = doc["alerts"]
    assert isinstance(alerts, list) and len(alerts) == 1
    starts_at = alerts[0]["startsAt"]
    needle = f'"startsAt":"{starts_at}"'
    if raw.count(needle) != 1:
        raise RuntimeError(f"single.json: expected one {needle}")
    # The captured fingerprint is Alertmanager's; the 10-alert body relies on computing the same.
    if fingerprint(alerts[0]["labels"]) != alerts[0]["fingerprint"]:
        raise RuntimeError("single.json: fingerprint does not match its labels")
    return Payload(
        key="1-alert",
        alerts=1,
        template=raw.strip().replace(needle, f'"startsAt":"{PLACEHOLDER}"'),
        starts_at=starts_at,
        unique_every=unique_every,
        description="tests/fixtures/alertmanager/single.json as captured",
    )


def ten_alerts(unique_every: int) -> Payload:
    """single.json's envelope with 10 alerts differing by `instance` (so by fingerprint)."""
    _, doc = _single()
    base = doc["alerts"][0]  # type: ignore[index]
    alerts = []
    for i in range(1, 11):
        labels = dict(base["labels"], instance=f"host-{i}:9100", scenario="group10")
        alerts.append(
            dict(base, labels=labels, startsAt=PLACEHOLDER, fingerprint=fingerprint(labels))
        )
    common = {k: v for k, v in alerts[0]["labels"].items() if k != "instance"}
    envelope = dict(doc, alerts=alerts, commonLabels=common)
    return Payload(
        key="10-alert",
        alerts=10,
        template=json.dumps(envelope, separators=(",", ":"), ensure_ascii=False),
        starts_at=base["startsAt"],
        unique_every=unique_every,
        description=(
            "single.json's envelope, 10 alerts with distinct `instance` labels and "
            "Alertmanager fingerprints (same startsAt), commonLabels recomputed"
        ),
    )
