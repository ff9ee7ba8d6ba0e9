"""A throwaway PostgreSQL server for the bench, started once from the installed binaries.

Like tests/pg.py (initdb in a temp folder under /tmp, a free port, as root the server runs as the
`postgres` system user), but durable: fsync, full_page_writes and synchronous_commit keep their
defaults, so a commit costs a WAL flush as SQLite's synchronous=FULL costs an fsync. Only
`max_wal_size` is raised (so loading a million rows does not checkpoint every few seconds) and
the server listens on 127.0.0.1 only. Each run gets a database of its own (`create_database`).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.servers import HOST, free_port

#: server settings passed with -c (everything else is initdb's default)
SETTINGS = {
    "listen_addresses": HOST,
    "max_connections": "100",
    "max_wal_size": "4GB",
}


class PostgresMissing(SystemExit):
    pass


def find_pg_bin() -> Path | None:
    """The folder holding initdb and postgres, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class PostgresServer:
    """`start()` runs initdb and the server; `stop()` shuts it down and removes its folder."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        # not under the bench's temp folder: the server may run as `postgres`, which must be
        # able to enter every folder above its data directory
        self.base = Path(tempfile.mkdtemp(prefix="alert-history-bench-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "run"
        self.log_path = self.base / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._root = os.geteuid() == 0
        self.version = ""
        self._databases = 0

    @classmethod
    def find(cls) -> PostgresServer:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PostgresMissing(
                "bench: PostgreSQL is not installed (initdb not found). `make system-deps` "
                "installs it (Debian: `apt-get install postgresql`); or run "
                "`python -m bench --only ingest --no-postgres`."
            )
        return cls(bin_dir)

    @property
    def _user(self) -> str | None:
        """PostgreSQL refuses to run as root: then it runs as the `postgres` system user."""
        return "postgres" if self._root else None

    def start(self, deadline_s: float = 60.0) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self._root:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        subprocess.run(
            [
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
            ],
            check=True, capture_output=True, timeout=120, user=self._user, group=self._user,
        )  # fmt: skip
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-k", str(self.sockets)]
        for name, value in SETTINGS.items():
            argv += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, user=self._user, group=self._user
            )
        began = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited while starting:\n{self.log_tail()}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    self.version = str(row[0]) if row else "?"
                    return
            except psycopg.OperationalError:
                if time.monotonic() - began > deadline_s:
                    self.stop()
                    raise
                time.sleep(0.1)

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{dbname}"

    def create_database(self, prefix: str = "bench") -> str:
        """A new empty database; returns its URL."""
        self._databases += 1
        name = f"{prefix}_{self._databases}_{os.getpid()}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def checkpoint(self) -> None:
        """Flush dirty pages now, so that a checkpoint does not land inside the next run."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def database_size(self, url: str) -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the postmaster and its processes, exited ones included."""
        if self.proc is None:
            return 0.0
        root, ticks = self.proc.pid, 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == root:  # its own time and that of the backends it has reaped
                ticks += sum(int(f) for f in fields[11:15])
            elif ppid == root:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def settings_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in SETTINGS.items() if k != "listen_addresses")

    def stop(self, *, remove: bool = True) -> None:
        """Fast shutdown (SIGINT), then remove the data folder (unless `remove` is false)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
