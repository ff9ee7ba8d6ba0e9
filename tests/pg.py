"""A throwaway PostgreSQL server from the installed binaries: initdb in a temp dir, a free port.

As root (CI), the server runs as the `postgres` system user, since PostgreSQL refuses to run as
root. `stop()` and `start()` again keep the data and the port, for restart tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg


def find_pg_bin() -> Path | None:
    """The folder holding initdb and postgres, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    def __init__(self, base: Path, bin_dir: Path) -> None:
        self.base = base
        self.bin = bin_dir
        self.data = base / "data"
        self.sockets = base / "run"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._root = os.geteuid() == 0

    @property
    def _user(self) -> str | None:
        """PostgreSQL refuses to run as root: then it runs as the `postgres` system user."""
        return "postgres" if self._root else None

    def _run(self, *args: str) -> None:
        user = self._user
        subprocess.run(args, check=True, capture_output=True, timeout=120, user=user, group=user)

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._root:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        log = open(self.base / "postgres.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"), "-D", str(self.data),
                "-p", str(self.port), "-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._user,
            group=self._user,
        )  # fmt: skip
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Return once the server accepts connections (a subprocess we started: a bounded poll)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError((self.base / "postgres.log").read_text()[-2000:])
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown: sessions are ended, committed data kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast": SIGTERM would wait for clients
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
