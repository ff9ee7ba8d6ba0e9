"""Where the service's CPU goes: py-spy samples of one extra, untimed service run under load.

py-spy is optional (`.venv/bin/pip install py-spy`; it is not a project dependency). The run is
separate from the measured rounds because sampling slows the process down.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import load
from bench.payloads import Payload
from bench.servers import Server

#: component -> path prefixes of the frames' files, first match wins (order matters)
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("alert_history (service code)", ("alert_history/",)),
    ("quart / werkzeug", ("quart/", "quart_trio/", "werkzeug/", "flask/", "blinker/")),
    ("h11 (HTTP/1.1 parsing)", ("h11/",)),
    ("hypercorn", ("hypercorn/",)),
    ("trio", ("trio/", "outcome/", "sniffio/", "<attrs generated methods")),
    ("prometheus_client", ("prometheus_client/",)),
    ("logging", ("logging/",)),
    ("msgspec", ("msgspec/",)),
)
OTHER = "stdlib / other"
THREAD_MARK = "(threading.py:"


SCHEDULER = "trio scheduler + epoll (no task running)"
PLUMBING = "trio task plumbing (no library frame above)"
WORKER = "worker threads (SQLite calls, thread cache)"
RUN_LOOP = "unrolled_run (trio/_core/_run.py"


@dataclass
class Profile:
    samples: int = 0
    #: each sample once: the innermost frame of a library (trio/stdlib frames are charged to the
    #: library frame that called them), or the scheduler, or a worker thread
    by_layer: Counter[str] = field(default_factory=Counter)
    #: samples whose task stack (frames under trio's run loop) has a frame of the component
    incl_by_component: Counter[str] = field(default_factory=Counter)
    self_by_function: Counter[str] = field(default_factory=Counter)
    incl_by_app_function: Counter[str] = field(default_factory=Counter)
    command: str = ""
    rps: float = 0.0
    error: str = ""


def find_py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def _path(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "path/to/file.py"
    inside = frame.rsplit(" (", 1)[-1].rstrip(")")
    return inside.rsplit(":", 1)[0]


def component(frame: str) -> str:
    path = _path(frame)
    for name, prefixes in COMPONENTS:
        if any(path.startswith(p) or f"/{p}" in path for p in prefixes):
            return name
    return OTHER


def _short(frame: str) -> str:
    func, _, where = frame.rpartition(" (")
    return f"{func} ({where.rstrip(')').rsplit(':', 1)[0]})"


def _layer(task_frames: list[str]) -> str:
    for frame in reversed(task_frames):
        name = component(frame)
        if name not in ("trio", OTHER):
            return name
    return PLUMBING


def summarize(raw: str) -> Profile:
    prof = Profile()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        prof.samples += count
        prof.self_by_function[_short(frames[-1])] += count
        if any(THREAD_MARK in f for f in frames[:3]):
            prof.by_layer[WORKER] += count
            task = frames
        else:
            loop = max((i for i, f in enumerate(frames) if RUN_LOOP in f), default=-1)
            task = frames[loop + 1 :]
            prof.by_layer[_layer(task) if task else SCHEDULER] += count
        for name in {component(f) for f in task}:
            prof.incl_by_component[name] += count
        app_frames = [f for f in task if _path(f).startswith("alert_history/")]
        for name in {_short(f) for f in app_frames if "alert_history/__main__" not in f}:
            prof.incl_by_app_function[name] += count
    return prof


def profile_service(
    py_spy: str,
    wrk: str,
    payload: Payload,
    template: Path,
    *,
    concurrency: int,
    threads: int,
    seconds: float,
    tmp: Path,
) -> Profile:
    server = Server.service(tmp / f"profile-{payload.key}.db", tmp / f"profile-{payload.key}.log")
    raw_path = tmp / f"profile-{payload.key}.raw"
    server.start()
    try:

        def wrk_argv(secs: float, salt: int) -> list[str]:
            return load.command(
                wrk,
                server.url + "/webhook",
                template=template,
                starts_at=payload.starts_at,
                unique_every=payload.unique_every,
                salt=salt,
                connections=concurrency,
                threads=threads,
                seconds=secs,
                timeout=10,
            )

        load.run(wrk_argv(2, 1))  # warm-up
        with subprocess.Popen(
            wrk_argv(seconds + 2, 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as loader:
            spy = [
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--rate",
                "200",
                "--duration",
                f"{max(1, round(seconds))}",
                "--format",
                "raw",
                "--output",
                str(raw_path),
            ]
            spied = subprocess.run(spy, capture_output=True, text=True, check=False)
            out, _ = loader.communicate()
        if spied.returncode != 0 or not raw_path.exists():
            return Profile(error=f"py-spy failed (rc {spied.returncode}): {spied.stderr.strip()}")
        prof = summarize(raw_path.read_text(errors="replace"))
        prof.command = " ".join(Path(a).name if a == py_spy else a for a in spy[:-2])
        line = next((ln for ln in out.splitlines() if ln.startswith("Requests/sec:")), "")
        prof.rps = float(line.split()[1]) if line else 0.0
        return prof
    finally:
        server.stop()
