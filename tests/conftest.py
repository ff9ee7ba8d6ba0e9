"""Fixtures: a service running in the test's trio run, on a real socket, with its client."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
import pytest
import trio

from alert_history.actors import Hooks
from alert_history.app import Service, run_service
from alert_history.config import Settings, load_settings
from alert_history.storage import Storage, open_storage
from tests.pg import PostgresServer, find_pg_bin
from tests.redis_server import RedisServer, find_redis_server
from tests.support import service_env

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def make(**env: str) -> Settings:
        return load_settings(service_env(tmp_path / "alerts.db", **env))

    return make


@asynccontextmanager
async def running(settings: Settings, hooks: Hooks | None = None) -> AsyncIterator[Service]:
    """Run the whole service tree until the block ends, then stop it in order."""
    async with trio.open_nursery() as nursery:
        service: Service = await nursery.start(partial(run_service, settings, hooks=hooks))
        try:
            yield service
        finally:
            with trio.fail_after(30):
                await service.shutdown()


@pytest.fixture
async def service(make_settings: SettingsFactory) -> AsyncIterator[Service]:
    async with running(make_settings()) as svc:
        yield svc


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        yield http


class _Server(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


@contextmanager
def _throwaway(prefix: str, make: Callable[[Path], S]) -> Iterator[S]:
    """A server from the installed binaries in a fresh temp dir, stopped and removed after."""
    # not under pytest's tmp_path: that is private to root, and the server may run as `postgres`
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        server = make(base)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the test session; tests take fresh databases from it."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: `make test` installs it (apt-get postgresql)")

    def make(base: Path) -> PostgresServer:
        server = PostgresServer(base, bin_dir)
        server.init()
        return server

    with _throwaway("alert-history-pg-", make) as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: SQLite in a temp dir, a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/storage.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """The storage contract's subject: open (migrated) on `storage_url`, closed afterwards."""
    backend = await open_storage(storage_url)
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway redis-server for the session; `redis_url` empties it for each test."""
    binary = find_redis_server()
    if binary is None:
        pytest.fail("redis-server is not installed: `make test` installs it (apt-get redis-server)")
    with _throwaway("alert-history-redis-", partial(RedisServer, binary=binary)) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url
