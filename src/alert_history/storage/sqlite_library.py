"""Process-wide settings of the SQLite library that Python's `sqlite3` module links.

SQLite counts every allocation in global memory statistics by default
(SQLITE_CONFIG_MEMSTATUS), under one process-wide mutex. The reports' statements allocate a
lot, so with the statistics on, two reader threads running reports take as long as one running
them in turn: the readers queue on that mutex instead of using the second core. Nothing here
reads the statistics, so they are switched off.

The setting can only change while the library is not initialized, and Python's `sqlite3`
initializes it on import: `statistics_off` shuts it down first, which SQLite allows only when
nothing of it is in use. It checks that (a probe connection shows the statistics counting, and
nothing is allocated once the probe is closed, so no other connection is open anywhere in the
process) and otherwise leaves the library as it is. It runs once per process, under a lock, when
the first SQLite storage opens (before its own connections).
"""

from __future__ import annotations

import ctypes
import importlib.util
import sqlite3
import threading

_SQLITE_OK = 0
_SQLITE_CONFIG_MEMSTATUS = 9

_lock = threading.Lock()
_done = False


def _library() -> ctypes.CDLL | None:
    """The SQLite library `sqlite3` uses (its extension module's own symbols), or None."""
    spec = importlib.util.find_spec("_sqlite3")
    if spec is None or spec.origin is None:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        for name in ("sqlite3_shutdown", "sqlite3_config", "sqlite3_initialize"):
            getattr(lib, name).restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


def statistics_counting() -> bool:
    """Whether SQLite keeps its memory statistics now (a connection open shows in them)."""
    lib = _library()
    if lib is None:
        return True
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE TABLE t (x)")
        return bool(lib.sqlite3_memory_used() > 0)
    finally:
        probe.close()


def statistics_off() -> bool:
    """Switch SQLite's memory statistics off if nothing of the library is in use; return
    whether they are off now (once off, later calls do nothing)."""
    global _done
    with _lock:
        if _done:
            return True
        lib = _library()
        if lib is None:
            return False
        if not statistics_counting():
            _done = True  # built or configured without them
            return True
        if lib.sqlite3_memory_used() != 0:
            return False  # a connection is open somewhere in the process: not now
        if lib.sqlite3_shutdown() != _SQLITE_OK:
            return False
        configured = bool(
            lib.sqlite3_config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == _SQLITE_OK
        )
        if lib.sqlite3_initialize() != _SQLITE_OK:  # sqlite3_open would call it anyway
            return False
        _done = configured
        return configured
