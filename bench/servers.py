"""The servers under test as subprocesses: free port, readiness, CPU time, peak RSS, clean stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _clk_tck() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


class Server:
    """One server process; `start()` returns once GET /readyz answered 200."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.port = int(env.get("PORT", "0"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0
        self.stop_s = 0.0
        self.returncode: int | None = None

    @classmethod
    def ceiling(cls, log_path: Path) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "bench.ceiling", "--host", HOST, "--port", str(port)]
        return cls("ceiling", argv, dict(os.environ, PORT=str(port)), log_path)

    @classmethod
    def service(cls, db_path: Path, log_path: Path) -> Server:
        """The service on a SQLite file."""
        return cls.service_on(f"sqlite:///{db_path}", log_path)

    @classmethod
    def service_on(
        cls,
        database_url: str,
        log_path: Path,
        name: str = "service",
        extra_env: dict[str, str] | None = None,
    ) -> Server:
        """The service on any database URL (sqlite:///path or postgresql://...)."""
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            HOST=HOST,
            PORT=str(port),
            LOG_LEVEL="WARNING",
            **(extra_env or {}),
        )
        return cls(name, [str(VENV_BIN / "alert-history"), "serve"], env, log_path)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, deadline_s: float = 30.0) -> None:
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            if self._ready():
                self.startup_s = time.monotonic() - started
                return
            if time.monotonic() - started > deadline_s:
                self.stop()
                raise RuntimeError(
                    f"{self.name} not ready after {deadline_s:g} s:\n" + self.log_tail()
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def get(self, path: str) -> str:
        status, body = self.fetch(path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
        return body

    def fetch(self, path: str, timeout_s: float = 30.0) -> tuple[int, str]:
        """GET `path`: (status, body), whatever the status."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout_s)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def status_kb(self, field: str) -> int:
        """A `kB` field of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all threads) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _clk_tck()

    def stop(self, timeout_s: float = 40.0) -> int | None:
        """SIGTERM, wait (graceful drain), SIGKILL only past the deadline; return the exit code."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stop_s = time.monotonic() - began
        self.returncode = self.proc.returncode
        return self.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
