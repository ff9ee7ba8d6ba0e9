"""The classifier's SQL on both backends, and the in-process cache's bounds (pure, clock given)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from alert_history.kv import TTLCache
from alert_history.models import AlertEvent, Classification
from alert_history.storage import Db, Storage
from alert_history.storage.classifications import (
    claim_classifications,
    load_classification,
    load_classifications,
    load_subject,
    pending_fingerprints,
    save_classifications,
)
from alert_history.storage.service_settings import get_setting, put_setting

T0 = 1_800_000_000 * 10**9


def event(fp: str, *, status: str = "firing", at: int = T0) -> AlertEvent:
    return AlertEvent(
        fingerprint=fp, status="resolved" if status == "resolved" else "firing", starts_at=T0,
        ends_at=0 if status == "firing" else at, alertname=f"Name{fp}", namespace="ns",
        severity="warning", labels={"alertname": f"Name{fp}", "x": "é\u2603"},
        annotations={"summary": "s"}, generator_url="", receiver="r", group_key="g",
        source="alertmanager", received_at=at,
    )  # fmt: skip


def classification(fp: str, *, at: int, fallback: bool = False) -> Classification:
    return Classification(
        fingerprint=fp, severity="warning" if fallback else "critical", confidence=0.3,
        reasoning="r", recommendations=["a"], processing_time=0.25,
        metadata={"fallback": fallback, "tags": ["t"]}, model=None if fallback else "gpt-4",
        source="fallback" if fallback else "llm", created_at=at, prompt_version="v1",
        tokens=None if fallback else 160,
    )  # fmt: skip


async def test_a_classification_keeps_model_prompt_tokens_latency_and_fallback(
    storage: Storage,
) -> None:
    item = classification("f1", at=T0)
    assert await storage.write(partial(save_classifications, items=[item])) == 1
    assert await storage.read(partial(load_classification, fingerprint="f1")) == item
    fallback = classification("f2", at=T0, fallback=True)
    await storage.write(partial(save_classifications, items=[fallback]))
    loaded = await storage.read(partial(load_classifications, fingerprints=["f1", "f2", "f3"]))
    assert set(loaded) == {"f1", "f2"}
    assert loaded["f2"].fallback and loaded["f2"].tokens is None
    # the storage contract's reader sees the same row
    assert (await storage.get_classification("f1")) is not None


async def test_an_older_classification_never_replaces_a_newer_one(storage: Storage) -> None:
    await storage.write(partial(save_classifications, items=[classification("f", at=T0 + 5)]))
    old = classification("f", at=T0, fallback=True)
    assert await storage.write(partial(save_classifications, items=[old])) == 0
    stored = await storage.read(partial(load_classification, fingerprint="f"))
    assert stored is not None and stored.source == "llm"


async def test_the_queue_is_firing_alerts_without_a_classification_then_old_fallbacks(
    storage: Storage,
) -> None:
    await storage.write_events(
        [
            event("new", at=T0 + 3),
            event("done"),
            event("fb_old"),
            event("fb_new"),
            event("gone", status="resolved"),
        ]
    )
    await storage.write(
        partial(
            save_classifications,
            items=[
                classification("done", at=T0),
                classification("fb_old", at=T0 + 10, fallback=True),
                classification("fb_new", at=T0 + 30, fallback=True),
            ],
        )
    )
    pending = partial(pending_fingerprints, limit=10)
    assert await storage.read(partial(pending, refallback_before=None)) == ["new"]
    assert await storage.read(partial(pending, refallback_before=T0 + 20)) == ["new", "fb_old"]
    everything = await storage.read(partial(pending, refallback_before=T0 + 40))
    assert everything[0] == "new" and set(everything) == {"new", "fb_old", "fb_new"}
    first = partial(pending_fingerprints, refallback_before=T0 + 40, limit=1)
    assert await storage.read(first) == ["new"]  # unclassified alerts come first


async def test_the_subject_is_the_newest_stored_state(storage: Storage) -> None:
    await storage.write_events([event("s"), event("s", status="resolved", at=T0 + 9)])
    subject = await storage.read(partial(load_subject, fingerprint="s"))
    assert subject is not None
    assert (subject.alertname, subject.status) == ("Names", "resolved")
    assert subject.labels == {"alertname": "Names", "x": "é\u2603"}
    assert await storage.read(partial(load_subject, fingerprint="nope")) is None


async def test_service_settings_are_replaced_in_place(storage: Storage) -> None:
    assert await storage.read(partial(get_setting, key="k")) is None
    await storage.write(partial(put_setting, key="k", value='{"mode":"x"}', now=1))
    await storage.write(partial(put_setting, key="k", value='{"mode":"y"}', now=2))
    assert await storage.read(partial(get_setting, key="k")) == '{"mode":"y"}'


def test_the_in_process_cache_expires_entries_and_evicts_the_least_recently_used() -> None:
    now = [0.0]
    cache: TTLCache[int] = TTLCache(2, 10.0, lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 9.999
    assert cache.get("a") == 1
    now[0] = 10.0
    assert cache.get("a") is None and cache.get("c") is None
    assert len(cache) == 0
    with pytest.raises(ValueError):
        TTLCache(0, 1.0, lambda: 0.0)


async def test_a_lease_is_taken_once_until_it_expires_and_its_owner_may_renew_it(
    storage: Storage,
) -> None:
    def claim(fps: list[str], owner: str, now: int) -> Callable[[Db], list[str]]:
        until = now + 10
        return partial(claim_classifications, fingerprints=fps, owner=owner, now=now, until=until)

    assert await storage.write(claim(["b", "a", "a"], "r1", 100)) == ["a", "b"]
    assert await storage.write(claim(["a", "b", "c"], "r2", 105)) == ["c"]  # a, b held by r1
    assert await storage.write(claim(["a"], "r1", 106)) == ["a"]  # its own: renewed to 116
    assert await storage.write(claim(["a", "b"], "r2", 110)) == ["b"]  # b's lease ended at 110
    assert await storage.write(claim(["a"], "r2", 116)) == ["a"]
