"""The load generator: wrk with post.lua (POST bodies) or get.lua (GET a list of paths in turn),
both printing a JSON summary with latency percentiles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "post.lua"
GET_SCRIPT = Path(__file__).resolve().parent / "get.lua"
MARKER = "WRK_JSON "


class LoadToolMissing(SystemExit):
    pass


def ensure_wrk() -> str:
    """Return the path of wrk; install the Debian package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get"):
        print("bench: wrk not found; installing the Debian package `wrk` (apt-get)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
            subprocess.run(install, env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise LoadToolMissing(
        "bench: the load generator `wrk` is not installed. Install it (Debian/Ubuntu: "
        "`sudo apt-get install wrk`, macOS: `brew install wrk`) and run `make bench` again."
    )


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0] if text else "wrk (unknown version)"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    status_errors: int  # responses with status >= 400 (wrk's errors.status)
    socket_errors: int  # connect + read + write
    timeouts: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        """2xx responses (the servers answer nothing in 1xx or 3xx)."""
        return self.requests - self.status_errors

    @property
    def rps(self) -> float:
        """Successful (2xx) requests per second."""
        return self.ok / self.duration_s if self.duration_s else 0.0


def command(
    wrk: str,
    url: str,
    *,
    template: Path,
    starts_at: str,
    unique_every: int,
    salt: int,
    connections: int,
    threads: int,
    seconds: float,
    timeout: float,
) -> list[str]:
    return [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(template),
        starts_at,
        str(unique_every),
        str(salt),
    ]


def get_command(
    wrk: str,
    base_url: str,
    *,
    paths_file: Path,
    connections: int,
    threads: int,
    seconds: float,
    timeout: float,
) -> list[str]:
    """GET the paths listed in `paths_file` (one a line) in turn from `base_url`."""
    return [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(GET_SCRIPT),
        base_url,
        "--",
        str(paths_file),
    ]


def run(argv: list[str]) -> WrkResult:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARKER)), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (rc {out.returncode}): {' '.join(argv)}\n{out.stdout}\n{out.stderr}"
        )
    data = json.loads(line[len(MARKER) :])
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        status_errors=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"],
        timeouts=data["timeout"],
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )
