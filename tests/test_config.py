"""Settings: defaults, environment (legacy and generic names), config files, redaction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from alert_history.config import (
    DatabaseSettings,
    IngestSettings,
    LLMSettings,
    LogSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    env_var_names,
    load_settings,
    redacted,
)
from alert_history.errors import ConfigError

# (legacy env var, raw value, dotted path, expected value): one row per legacy name.
LEGACY_TABLE: list[tuple[str, str, str, object]] = [
    ("SERVICE_NAME", "ah-test", "service_name", "ah-test"),
    ("SERVICE_VERSION", "9.9.9", "service_version", "9.9.9"),
    ("ENVIRONMENT", "production", "environment", "production"),
    ("RETENTION_DAYS", "7", "retention_days", 7),
    ("STALE_FIRING_AFTER", "600", "stale_firing_after", 600.0),
    ("ENRICHMENT_MODE", "transparent", "enrichment_mode", "transparent"),
    ("HOST", "127.0.0.1", "server.host", "127.0.0.1"),
    ("SERVER_HOST", "10.0.0.1", "server.host", "10.0.0.1"),
    ("PORT", "9000", "server.port", 9000),
    ("SERVER_PORT", "9001", "server.port", 9001),
    ("MAX_BODY_BYTES", "2048", "server.max_body_bytes", 2048),
    ("GRACEFUL_TIMEOUT", "12.5", "server.graceful_timeout", 12.5),
    ("KEEP_ALIVE_TIMEOUT", "5", "server.keep_alive_timeout", 5.0),
    ("SHUTDOWN_DELAY", "2.5", "server.shutdown_delay", 2.5),
    ("CORS_ORIGINS", "https://a.example", "server.cors_origins", "https://a.example"),
    ("DATABASE_URL", "postgresql://h/db", "database.url", "postgresql://h/db"),
    ("SQLITE_PATH", "/var/lib/ah.db", "database.url", "sqlite:////var/lib/ah.db"),
    ("ALERT_HISTORY_DB", "ah.sqlite3", "database.url", "sqlite:///ah.sqlite3"),
    ("DATABASE_POOL_SIZE", "3", "database.pool_size", 3),
    ("DATABASE_QUERY_TIMEOUT", "2.5", "database.query_timeout", 2.5),
    ("DATABASE_AUTO_MIGRATE", "false", "database.auto_migrate", False),
    ("AUTO_MIGRATE", "false", "database.auto_migrate", False),
    ("REDIS_URL", "redis://cache:6379/0", "redis.url", "redis://cache:6379/0"),
    ("REDIS_TIMEOUT", "0.2", "redis.timeout", 0.2),
    ("LLM_ENABLED", "true", "llm.enabled", True),
    ("ENABLE_CLASSIFICATION", "true", "llm.enabled", True),
    ("LLM_PROXY_URL", "http://llm:8080", "llm.proxy_url", "http://llm:8080"),
    ("LLM_API_KEY", "sk-test", "llm.api_key", "sk-test"),
    ("LLM_MODEL", "gpt-4o", "llm.model", "gpt-4o"),
    ("LLM_TIMEOUT", "4", "llm.timeout", 4.0),
    ("LLM_MAX_RETRIES", "0", "llm.max_retries", 0),
    ("LLM_CONCURRENCY", "4", "llm.concurrency", 4),
    ("LLM_CACHE_TTL", "60", "llm.cache_ttl", 60),
    ("LLM_CACHE_SIZE", "10", "llm.cache_size", 10),
    ("LLM_QUEUE_SIZE", "8", "llm.queue_size", 8),
    ("LLM_POLL_INTERVAL", "0.5", "llm.poll_interval", 0.5),
    ("LLM_PAGE_SIZE", "7", "llm.page_size", 7),
    ("LLM_BREAKER_FAILURES", "2", "llm.breaker_failures", 2),
    ("LLM_BREAKER_FAILURE_RATE", "0.25", "llm.breaker_failure_rate", 0.25),
    ("LLM_BREAKER_WINDOW", "10", "llm.breaker_window", 10.0),
    ("LLM_BREAKER_MIN_CALLS", "3", "llm.breaker_min_calls", 3),
    ("LLM_BREAKER_SLOW_CALL", "1.5", "llm.breaker_slow_call", 1.5),
    ("LLM_BREAKER_RESET", "5", "llm.breaker_reset", 5.0),
    ("LLM_WORKER", "false", "llm.worker", False),
    ("LLM_WORKER_NICE", "3", "llm.worker_nice", 3),
    ("INGEST_QUEUE_SIZE", "16", "ingest.queue_size", 16),
    ("DEDUP_QUEUE_SIZE", "17", "ingest.dedup_queue_size", 17),
    ("WRITER_QUEUE_SIZE", "18", "ingest.writer_queue_size", 18),
    ("WRITER_BATCH_MAX", "500", "ingest.writer_batch_max", 500),
    ("INGEST_ENQUEUE_TIMEOUT", "0.25", "ingest.enqueue_timeout", 0.25),
    ("INGEST_COMMIT_TIMEOUT", "3", "ingest.commit_timeout", 3.0),
    ("INGEST_RETRY_AFTER", "9", "ingest.retry_after", 9),
    ("LOG_LEVEL", "WARNING", "log.level", "WARNING"),
    ("LOG_JSON", "off", "log.json", False),
]


# One row per field for the generic names (the first legacy row of each path takes a plain value).
GENERIC_TABLE = [
    row
    for row in LEGACY_TABLE
    if row[0] not in {"SERVER_HOST", "SERVER_PORT", "AUTO_MIGRATE", "ENABLE_CLASSIFICATION"}
]
GENERIC_TABLE = [row for row in GENERIC_TABLE if row[0] not in {"SQLITE_PATH", "ALERT_HISTORY_DB"}]


def value_at(settings: Settings, path: str) -> object:
    value: object = settings
    for name in path.split("."):
        value = getattr(value, name)
    return value


def generic_name(path: str) -> str:
    return "ALERT_HISTORY_" + path.replace(".", "_").upper()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(environ: dict[str, str], config_path: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(environ, config_path)
    return info.value


# Defaults


def test_defaults_without_environment_or_file() -> None:
    settings = load_settings({})

    assert settings == Settings()
    assert settings.service_name == "alert-history"
    assert settings.service_version == "0.1.0"
    assert settings.environment == "development"
    assert settings.retention_days == 30
    assert settings.enrichment_mode == "enriched"
    assert settings.server == ServerSettings(
        host="0.0.0.0",
        port=8080,
        max_body_bytes=10 * 1024 * 1024,
        graceful_timeout=30.0,
        keep_alive_timeout=75.0,
        cors_origins="*",
    )
    assert settings.database == DatabaseSettings(
        url="sqlite:///data/alert_history.db", pool_size=10, query_timeout=30.0, auto_migrate=True
    )
    assert settings.redis == RedisSettings(url=None)
    assert settings.llm == LLMSettings(
        enabled=False,
        proxy_url="http://localhost:8000",
        api_key=None,
        model="gpt-4",
        timeout=30.0,
        max_retries=3,
    )
    assert settings.ingest == IngestSettings(
        queue_size=256,
        dedup_queue_size=256,
        writer_queue_size=256,
        writer_batch_max=2000,
        enqueue_timeout=1.0,
        commit_timeout=8.0,
        retry_after=5,
    )
    assert settings.log == LogSettings(level="INFO", json=True)


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = load_settings({})

    with pytest.raises(AttributeError):
        settings.retention_days = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        ServerSettings("127.0.0.1")  # type: ignore[call-arg]


# Environment


@pytest.mark.parametrize(("name", "raw", "path", "expected"), LEGACY_TABLE)
def test_legacy_env_var_sets_its_field(name: str, raw: str, path: str, expected: object) -> None:
    settings = load_settings({name: raw})

    assert value_at(settings, path) == expected
    assert type(value_at(settings, path)) is type(expected)


def test_legacy_table_covers_every_legacy_env_var_and_every_field() -> None:
    names = env_var_names()
    legacy = {name for name, path in names.items() if name != generic_name(path)}

    assert legacy == {row[0] for row in LEGACY_TABLE}
    assert set(names.values()) == {row[2] for row in LEGACY_TABLE}
    assert sorted(row[2] for row in GENERIC_TABLE) == sorted(set(names.values()))


@pytest.mark.parametrize(("name", "raw", "path", "expected"), GENERIC_TABLE)
def test_generic_env_var_sets_its_field(name: str, raw: str, path: str, expected: object) -> None:
    settings = load_settings({generic_name(path): raw})

    assert value_at(settings, path) == expected


def test_generic_names_follow_section_and_field() -> None:
    names = env_var_names()

    assert names["ALERT_HISTORY_INGEST_QUEUE_SIZE"] == "ingest.queue_size"
    assert names["ALERT_HISTORY_RETENTION_DAYS"] == "retention_days"
    assert names["ALERT_HISTORY_LLM_API_KEY"] == "llm.api_key"
    assert names["PORT"] == "server.port"
    assert names["SQLITE_PATH"] == "database.url"


def test_generic_name_wins_over_legacy_name() -> None:
    settings = load_settings(
        {"PORT": "9000", "ALERT_HISTORY_SERVER_PORT": "9100", "RETENTION_DAYS": "3"}
        | {"ALERT_HISTORY_RETENTION_DAYS": "4", "ALERT_HISTORY_DATABASE_URL": "postgres://g/db"}
        | {"DATABASE_URL": "postgresql://legacy/db", "SQLITE_PATH": "x.db"}
    )

    assert settings.server.port == 9100
    assert settings.retention_days == 4
    assert settings.database.url == "postgres://g/db"


def test_host_and_port_win_over_server_host_and_server_port() -> None:
    settings = load_settings(
        {"HOST": "1.1.1.1", "SERVER_HOST": "2.2.2.2", "PORT": "81", "SERVER_PORT": "82"}
    )

    assert (settings.server.host, settings.server.port) == ("1.1.1.1", 81)


def test_database_url_wins_over_sqlite_path_which_wins_over_alert_history_db() -> None:
    everything = {
        "DATABASE_URL": "postgresql://u@h/db",
        "SQLITE_PATH": "v2.db",
        "ALERT_HISTORY_DB": "v1.sqlite3",
    }

    assert load_settings(everything).database.url == "postgresql://u@h/db"
    del everything["DATABASE_URL"]
    assert load_settings(everything).database.url == "sqlite:///v2.db"
    del everything["SQLITE_PATH"]
    assert load_settings(everything).database.url == "sqlite:///v1.sqlite3"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        (" off ", False),
    ],
)
def test_boolean_env_var_accepts_common_spellings(raw: str, expected: bool) -> None:
    assert load_settings({"LLM_ENABLED": raw}).llm.enabled is expected


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": ""}, "PORT"),
        ({"RETENTION_DAYS": "1.5"}, "RETENTION_DAYS"),
        ({"GRACEFUL_TIMEOUT": "soon"}, "GRACEFUL_TIMEOUT"),
        ({"LLM_TIMEOUT": "nan"}, "LLM_TIMEOUT"),
        ({"LLM_ENABLED": "maybe"}, "LLM_ENABLED"),
        ({"LOG_JSON": ""}, "LOG_JSON"),
        ({"ALERT_HISTORY_INGEST_QUEUE_SIZE": "many"}, "ALERT_HISTORY_INGEST_QUEUE_SIZE"),
        ({"ENRICHMENT_MODE": "magic"}, "ENRICHMENT_MODE"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ],
)
def test_invalid_env_value_is_named_by_its_env_var(environ: dict[str, str], name: str) -> None:
    error = config_error(environ)

    assert error.path == name


def test_invalid_integer_message_quotes_the_value() -> None:
    error = config_error({"PORT": "abc"})

    assert error.path == "PORT"
    assert "integer" in error.message
    assert "'abc'" in error.message


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("PORT", "70000"),
        ("SERVER_PORT", "-1"),
        ("ALERT_HISTORY_SERVER_PORT", "65536"),
        ("RETENTION_DAYS", "0"),
        ("MAX_BODY_BYTES", "1023"),
        ("GRACEFUL_TIMEOUT", "0"),
        ("INGEST_QUEUE_SIZE", "0"),
        ("DEDUP_QUEUE_SIZE", "-1"),
        ("WRITER_QUEUE_SIZE", "0"),
        ("WRITER_BATCH_MAX", "0"),
        ("INGEST_ENQUEUE_TIMEOUT", "0"),
        ("INGEST_COMMIT_TIMEOUT", "-8"),
        ("INGEST_RETRY_AFTER", "0"),
    ],
)
def test_constraint_violation_is_named_by_its_env_var(name: str, raw: str) -> None:
    error = config_error({name: raw})

    assert error.path == name


def test_port_out_of_range_message_states_the_bound() -> None:
    error = config_error({"PORT": "70000"})

    assert error.path == "PORT"
    assert "65535" in error.message


@pytest.mark.parametrize(
    "url", ["mysql://u:hunter2@h/db", "sqlite:/hunter2.db", "data/hunter2.db", "hunter2"]
)
def test_database_url_with_unknown_scheme_is_rejected(url: str) -> None:
    error = config_error({"DATABASE_URL": url})

    assert error.path == "DATABASE_URL"
    assert "postgresql://" in error.message
    assert "hunter2" not in str(error)


def test_invalid_choice_message_lists_the_choices() -> None:
    error = config_error({"LOG_LEVEL": "verbose"})

    assert error.path == "LOG_LEVEL"
    assert "DEBUG" in error.message
    assert "CRITICAL" in error.message


@pytest.mark.parametrize(
    "url", ["sqlite:///data/a.db", "postgresql://u:p@h:5432/db", "postgres://h/db"]
)
def test_database_url_accepts_sqlite_and_postgres_schemes(url: str) -> None:
    assert load_settings({"DATABASE_URL": url}).database.url == url


def test_empty_sqlite_path_is_rejected() -> None:
    assert config_error({"SQLITE_PATH": ""}).path == "SQLITE_PATH"


@pytest.mark.parametrize("raw", ["info", "Info", "INFO"])
def test_log_level_is_case_insensitive(raw: str) -> None:
    assert load_settings({"LOG_LEVEL": raw}).log.level == "INFO"


def test_empty_optional_env_var_means_unset() -> None:
    settings = load_settings({"REDIS_URL": "", "LLM_API_KEY": ""})

    assert settings.redis.url is None
    assert settings.llm.api_key is None


def test_unrelated_env_vars_are_ignored() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "DEBUG": "maybe",
        "WORKERS": "lots",
        "DATABASE_POOL_TIMEOUT": "not-a-number",
        # Injected by Kubernetes for a Service named alert-history or redis.
        "ALERT_HISTORY_PORT": "tcp://10.0.0.1:8080",
        "ALERT_HISTORY_SERVICE_PORT": "8080",
        "ALERT_HISTORY_SERVICE_HOST": "10.0.0.1",
        "REDIS_PORT": "tcp://10.0.0.2:6379",
        # A typo of a generic name is not a setting either.
        "ALERT_HISTORY_INGEST_QUEUE_SIZ": "x",
    }

    assert load_settings(environ) == Settings()


# Config file


def test_yaml_file_sets_nested_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "settings.yaml",
        "retention_days: 7\n"
        "server:\n  port: 9000\n  graceful_timeout: 5\n"
        "redis:\n  url: redis://cache:6379/1\n"
        "log:\n  level: debug\n  json: false\n",
    )

    settings = load_settings({}, path)

    assert settings.retention_days == 7
    assert settings.server.port == 9000
    assert settings.server.graceful_timeout == 5.0
    assert settings.server.host == "0.0.0.0"
    assert settings.redis.url == "redis://cache:6379/1"
    assert settings.log == LogSettings(level="DEBUG", json=False)


def test_yml_extension_and_str_path_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "settings.yml", "ingest:\n  queue_size: 8\n")

    assert load_settings({}, str(path)).ingest.queue_size == 8


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings({}, write(tmp_path, "empty.yaml", "")) == Settings()


def test_toml_file_sets_nested_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "settings.TOML",
        'retention_days = 7\nenrichment_mode = "transparent"\n\n'
        '[database]\nurl = "postgresql://u@h/db"\nauto_migrate = false\n\n'
        "[ingest]\nwriter_batch_max = 100\ncommit_timeout = 2.5\n",
    )

    settings = load_settings({}, path)

    assert settings.retention_days == 7
    assert settings.enrichment_mode == "transparent"
    assert settings.database.url == "postgresql://u@h/db"
    assert settings.database.auto_migrate is False
    assert settings.ingest.writer_batch_max == 100
    assert settings.ingest.commit_timeout == 2.5


def test_precedence_is_defaults_then_file_then_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "settings.yaml",
        "retention_days: 7\nserver:\n  port: 9000\n  host: 127.0.0.1\nlog:\n  level: ERROR\n",
    )

    settings = load_settings({"PORT": "9500", "ALERT_HISTORY_LOG_LEVEL": "warning"}, path)

    assert settings.server.port == 9500  # environment over file
    assert settings.log.level == "WARNING"  # environment over file
    assert settings.server.host == "127.0.0.1"  # file over default
    assert settings.retention_days == 7  # file over default
    assert settings.server.max_body_bytes == 10 * 1024 * 1024  # default


def test_sqlite_path_in_environment_overrides_file_database_url(tmp_path: Path) -> None:
    path = write(tmp_path, "settings.yaml", "database:\n  url: postgresql://h/db\n")

    assert load_settings({"SQLITE_PATH": "x.db"}, path).database.url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("retention_dayz: 7\n", "retention_dayz"),
        ("server:\n  prot: 9000\n", "server.prot"),
        ("ingest:\n  queue_size: 4\n  queue_sise: 5\n", "ingest.queue_sise"),
        ("metrics:\n  port: 9090\n", "metrics"),
    ],
)
def test_unknown_file_key_is_named_by_dotted_path(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, "settings.yaml", text)

    error = config_error({}, path)

    assert error.path == key
    assert str(path) in error.message


def test_unknown_file_key_message_lists_the_known_keys(tmp_path: Path) -> None:
    error = config_error({}, write(tmp_path, "settings.yaml", "server:\n  prot: 9000\n"))

    assert "port" in error.message
    assert "host" in error.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("server:\n  port: 70000\n", "server.port"),
        ("server:\n  port: '9000'\n", "server.port"),
        ("server: 9000\n", "server"),
        ("log:\n  level: loud\n", "log.level"),
        ("database:\n  url: mysql://h/db\n", "database.url"),
        ("retention_days: 0\n", "retention_days"),
        ("ingest:\n  enqueue_timeout: 0\n", "ingest.enqueue_timeout"),
    ],
)
def test_invalid_file_value_is_named_by_dotted_path(tmp_path: Path, text: str, key: str) -> None:
    assert config_error({}, write(tmp_path, "settings.yaml", text)).path == key


def test_invalid_file_value_is_reported_even_when_environment_overrides_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "settings.yaml", "server:\n  port: 70000\n")

    assert config_error({"PORT": "9000"}, path).path == "server.port"


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    assert config_error({}, path).path == str(path)


def test_directory_as_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dir.toml"
    path.mkdir()

    assert config_error({}, path).path == str(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.yaml", "server: [port\n"),
        ("bad.yml", "server:\n  port: 1\n bad indent: 2\n"),
        ("bad.toml", "[server\nport = 1\n"),
        ("bad.toml", "retention_days = \n"),
        ("list.yaml", "- 1\n- 2\n"),
        ("settings.json", '{"retention_days": 7}'),
    ],
)
def test_unparsable_or_unsupported_file_is_named(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)

    assert config_error({}, path).path == str(path)


def test_non_utf8_toml_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'service_name = "caf\xe9"\n')

    assert config_error({}, path).path == str(path)


# Redaction


def test_redacted_is_the_plain_nested_dict_when_there_are_no_secrets() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://alice@db:5432/ah"})

    assert redacted(settings) == msgspec.to_builtins(settings)


def test_redacted_masks_the_llm_api_key() -> None:
    secret = "sk-live-0123456789abcdef"
    settings = load_settings({"LLM_API_KEY": secret})

    view = redacted(settings)

    llm = view["llm"]
    assert isinstance(llm, dict)
    assert llm["api_key"] == "***"
    assert secret not in json.dumps(view)
    assert secret not in repr(settings)


def test_redacted_leaves_an_unset_api_key_as_null() -> None:
    llm = redacted(load_settings({}))["llm"]

    assert isinstance(llm, dict)
    assert llm["api_key"] is None


@pytest.mark.parametrize(
    ("name", "url", "secret", "expected"),
    [
        (
            "DATABASE_URL",
            "postgresql://alert:s3cr3t-pw@db:5432/alert_history",
            "s3cr3t-pw",
            "postgresql://alert:***@db:5432/alert_history",
        ),
        (
            "DATABASE_URL",
            "postgres://alert:p@ss/w0rd@db/ah?sslmode=require",
            "ss/w0rd",
            "postgres://alert:***@db/ah?sslmode=require",
        ),
        (
            "DATABASE_URL",
            "postgresql://db/ah?user=alert&password=qu3ry-pw",
            "qu3ry-pw",
            "postgresql://db/ah?user=alert&password=***",
        ),
        ("REDIS_URL", "redis://:r3dis-pw@cache:6379/0", "r3dis-pw", "redis://:***@cache:6379/0"),
        (
            "REDIS_URL",
            "rediss://default:r3dis-pw@cache:6380/0",
            "r3dis-pw",
            "rediss://default:***@cache:6380/0",
        ),
        (
            "LLM_PROXY_URL",
            "https://bot:pr0xy-pw@llm.example/v1?token=t0ken",
            "pr0xy-pw",
            "https://bot:***@llm.example/v1?token=***",
        ),
    ],
)
def test_redacted_masks_url_passwords(name: str, url: str, secret: str, expected: str) -> None:
    settings = load_settings({name: url})

    view = redacted(settings)
    dumped = json.dumps(view)

    section, field = env_var_names()[name].split(".")
    section_view: Any = view[section]
    assert section_view[field] == expected
    assert secret not in dumped
    assert "t0ken" not in dumped
    assert secret not in repr(settings)


def test_redacted_does_not_change_the_settings() -> None:
    settings = load_settings({"LLM_API_KEY": "sk-1", "REDIS_URL": "redis://:pw@cache/0"})

    redacted(settings)

    assert settings.llm.api_key == "sk-1"
    assert settings.redis.url == "redis://:pw@cache/0"


def test_every_secret_from_a_file_and_environment_is_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "settings.toml",
        '[llm]\napi_key = "file-key-123"\nproxy_url = "http://u:file-pw-456@llm"\n',
    )
    environ = {
        "DATABASE_URL": "postgresql://u:env-pw-789@db/ah",
        "REDIS_URL": "redis://u:env-pw-abc@cache/0",
    }

    dumped = json.dumps(redacted(load_settings(environ, path)))

    for secret in ("file-key-123", "file-pw-456", "env-pw-789", "env-pw-abc"):
        assert secret not in dumped
