"""Alertmanager's alert fingerprint (prometheus/common `model/signature.go`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

_OFFSET = 14695981039346656037
_PRIME = 1099511628211
_MASK = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return FNV-1a 64 over label names sorted byte-wise, each name and value followed by 0xFF."""
    digest = _OFFSET
    for name in sorted(labels, key=lambda n: n.encode()):
        for part in (name, labels[name]):
            for byte in part.encode():
                digest = ((digest ^ byte) * _PRIME) & _MASK
            digest = ((digest ^ _SEPARATOR) * _PRIME) & _MASK
    return f"{digest:016x}"


class FingerprintVerifier:
    """Check senders' fingerprints against the labels, remembering label sets already checked.

    Alertmanager re-sends the same alerts all the time; hashing 64 KiB label values in Python on
    every notification would dominate ingest, so verified (fingerprint, labels) pairs are cached
    in a bounded LRU.
    """

    def __init__(self, capacity: int = 65_536) -> None:
        self._capacity = capacity
        # fingerprint -> hash of the label set checked with it (an int, not the labels: bounded
        # memory even with 64 KiB label values; a collision only skips one mismatch count)
        self._verified: OrderedDict[str, int] = OrderedDict()
        self.mismatches = 0

    def resolve(self, given: str | None, labels: Mapping[str, str]) -> tuple[str, bool]:
        """Return (fingerprint to store, computed) keeping the sender's when it has one."""
        if not given:
            return fingerprint(labels), True
        key = hash(frozenset(labels.items()))
        if self._verified.get(given) == key:
            self._verified.move_to_end(given)
            return given, False
        if fingerprint(labels) != given:
            self.mismatches += 1
        self._verified[given] = key
        if len(self._verified) > self._capacity:
            self._verified.popitem(last=False)
        return given, False
