"""The settings Structs: one frozen Struct per section, defaults and constraints in the types.

Constraints live in `msgspec.Meta`, so one `msgspec.convert` validates a whole tree and
reports the failing field's path. Build instances with `load_settings`; constructing them
directly skips validation.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from alert_history.config.redact import redact_value

EnrichmentMode = Literal["transparent", "enriched", "transparent_with_recommendations"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]  # 0: any free port
DatabaseUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?:sqlite|postgresql|postgres)://",
        description="a URL starting with sqlite://, postgresql:// or postgres://",
    ),
]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every settings Struct: a repr that never shows a secret."""

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={redact_value(name, getattr(self, name))!r}" for name in self.__struct_fields__
        )
        return f"{type(self).__name__}({fields})"


class ServerSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The HTTP listener."""

    host: str = "0.0.0.0"
    port: Port = 8080
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10 * 1024 * 1024
    graceful_timeout: PositiveFloat = 30.0
    keep_alive_timeout: PositiveFloat = 75.0
    shutdown_delay: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    cors_origins: str = "*"


class DatabaseSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The alert store: SQLite or PostgreSQL, chosen by the URL scheme."""

    url: DatabaseUrl = "sqlite:///data/alert_history.db"
    pool_size: PositiveInt = 10
    query_timeout: PositiveFloat = 30.0
    auto_migrate: bool = True


class RedisSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Optional Redis; `url=None` keeps shared state in-process."""

    url: str | None = None
    timeout: PositiveFloat = 0.5  # socket timeout of one command; slower counts as Redis down


class LLMSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The LLM classification proxy."""

    enabled: bool = False
    proxy_url: str = "http://localhost:8000"
    api_key: str | None = None
    model: str = "gpt-4"
    timeout: PositiveFloat = 30.0  # one classification, retries included, ends after this long
    max_retries: NonNegativeInt = 3
    concurrency: PositiveInt = 16  # LLM calls in flight
    queue_size: PositiveInt = 1024  # fast-path hints; a full queue leaves rows to the poller
    poll_interval: PositiveFloat = 5.0  # seconds between scans of the unclassified rows
    page_size: PositiveInt = 100  # rows per scan
    cache_ttl: PositiveInt = 3600  # seconds a classification stays in the cache
    cache_size: PositiveInt = 10_000  # entries of the in-process cache (no Redis)
    breaker_failures: PositiveInt = 5  # consecutive failures that open the breaker
    breaker_failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    breaker_window: PositiveFloat = 60.0
    breaker_min_calls: PositiveInt = 10
    breaker_slow_call: PositiveFloat = 10.0  # a slower classification counts as a failure
    breaker_reset: PositiveFloat = 30.0  # open -> half-open after this long
    # the LLM calls (HTTP, JSON) run in a supervised worker process, at this CPU niceness
    worker: bool = True
    worker_nice: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10


class IngestSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Bounds of the ingest pipeline; a full queue past `enqueue_timeout` becomes a 503."""

    queue_size: PositiveInt = 256
    dedup_queue_size: PositiveInt = 256
    writer_queue_size: PositiveInt = 256
    writer_batch_max: PositiveInt = 2000
    enqueue_timeout: PositiveFloat = 1.0
    commit_timeout: PositiveFloat = 8.0
    retry_after: PositiveInt = 5


class LogSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Logging; `level` is matched case-insensitively by the loader."""

    level: LogLevel = "INFO"
    json: bool = True


class Settings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """All settings of the service, one section per concern."""

    service_name: str = "alert-history"
    service_version: str = "0.1.0"
    environment: str = "development"
    retention_days: PositiveInt = 30
    # a firing episode with no notification for this long is "stale" (Alertmanager re-sends
    # firing alerts every repeat_interval, 4 h by default)
    stale_firing_after: PositiveFloat = 43_200.0
    enrichment_mode: EnrichmentMode = "enriched"
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    llm: LLMSettings = msgspec.field(default_factory=LLMSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
