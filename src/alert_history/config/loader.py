"""Load settings: defaults, then an optional YAML or TOML file, then the environment.

Every field can be set from the environment by its generic name
`ALERT_HISTORY_<SECTION>_<FIELD>` (`ALERT_HISTORY_<FIELD>` at the top level) or by the
legacy name the Python v2 service used. Only names in this table are read: the process
environment also holds unrelated variables, among them the `<SERVICE>_PORT` variables that
Kubernetes injects.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from msgspec import inspect as mi

from alert_history.config.settings import Settings
from alert_history.errors import ConfigError

_GENERIC_PREFIX = "ALERT_HISTORY_"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_ERROR_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")


class _EnvVar(NamedTuple):
    name: str
    path: str
    # The value is a file path that becomes `sqlite:///<path>` (v1 and v2 SQLite settings).
    sqlite_path: bool = False


# Legacy names per field, highest precedence first; the generic name beats all of them.
_LEGACY: tuple[_EnvVar, ...] = (
    _EnvVar("SERVICE_NAME", "service_name"),
    _EnvVar("SERVICE_VERSION", "service_version"),
    _EnvVar("ENVIRONMENT", "environment"),
    _EnvVar("RETENTION_DAYS", "retention_days"),
    _EnvVar("STALE_FIRING_AFTER", "stale_firing_after"),
    _EnvVar("ENRICHMENT_MODE", "enrichment_mode"),
    _EnvVar("HOST", "server.host"),
    _EnvVar("SERVER_HOST", "server.host"),
    _EnvVar("PORT", "server.port"),
    _EnvVar("SERVER_PORT", "server.port"),
    _EnvVar("MAX_BODY_BYTES", "server.max_body_bytes"),
    _EnvVar("GRACEFUL_TIMEOUT", "server.graceful_timeout"),
    _EnvVar("KEEP_ALIVE_TIMEOUT", "server.keep_alive_timeout"),
    _EnvVar("SHUTDOWN_DELAY", "server.shutdown_delay"),
    _EnvVar("CORS_ORIGINS", "server.cors_origins"),
    _EnvVar("DATABASE_URL", "database.url"),
    _EnvVar("SQLITE_PATH", "database.url", sqlite_path=True),
    _EnvVar("ALERT_HISTORY_DB", "database.url", sqlite_path=True),
    _EnvVar("DATABASE_POOL_SIZE", "database.pool_size"),
    _EnvVar("DATABASE_QUERY_TIMEOUT", "database.query_timeout"),
    _EnvVar("DATABASE_AUTO_MIGRATE", "database.auto_migrate"),
    _EnvVar("AUTO_MIGRATE", "database.auto_migrate"),
    _EnvVar("REDIS_URL", "redis.url"),
    _EnvVar("LLM_ENABLED", "llm.enabled"),
    _EnvVar("ENABLE_CLASSIFICATION", "llm.enabled"),
    _EnvVar("LLM_PROXY_URL", "llm.proxy_url"),
    _EnvVar("LLM_API_KEY", "llm.api_key"),
    _EnvVar("LLM_MODEL", "llm.model"),
    _EnvVar("LLM_TIMEOUT", "llm.timeout"),
    _EnvVar("LLM_MAX_RETRIES", "llm.max_retries"),
    _EnvVar("LLM_CONCURRENCY", "llm.concurrency"),
    _EnvVar("LLM_CACHE_TTL", "llm.cache_ttl"),
    _EnvVar("LLM_CACHE_SIZE", "llm.cache_size"),
    _EnvVar("LLM_QUEUE_SIZE", "llm.queue_size"),
    _EnvVar("LLM_POLL_INTERVAL", "llm.poll_interval"),
    _EnvVar("LLM_PAGE_SIZE", "llm.page_size"),
    _EnvVar("LLM_BREAKER_FAILURES", "llm.breaker_failures"),
    _EnvVar("LLM_BREAKER_FAILURE_RATE", "llm.breaker_failure_rate"),
    _EnvVar("LLM_BREAKER_WINDOW", "llm.breaker_window"),
    _EnvVar("LLM_BREAKER_MIN_CALLS", "llm.breaker_min_calls"),
    _EnvVar("LLM_BREAKER_SLOW_CALL", "llm.breaker_slow_call"),
    _EnvVar("LLM_BREAKER_RESET", "llm.breaker_reset"),
    _EnvVar("LLM_WORKER", "llm.worker"),
    _EnvVar("LLM_WORKER_NICE", "llm.worker_nice"),
    _EnvVar("REDIS_TIMEOUT", "redis.timeout"),
    _EnvVar("INGEST_QUEUE_SIZE", "ingest.queue_size"),
    _EnvVar("DEDUP_QUEUE_SIZE", "ingest.dedup_queue_size"),
    _EnvVar("WRITER_QUEUE_SIZE", "ingest.writer_queue_size"),
    _EnvVar("WRITER_BATCH_MAX", "ingest.writer_batch_max"),
    _EnvVar("INGEST_ENQUEUE_TIMEOUT", "ingest.enqueue_timeout"),
    _EnvVar("INGEST_COMMIT_TIMEOUT", "ingest.commit_timeout"),
    _EnvVar("INGEST_RETRY_AFTER", "ingest.retry_after"),
    _EnvVar("LOG_LEVEL", "log.level"),
    _EnvVar("LOG_JSON", "log.json"),
)


def load_settings(
    environ: Mapping[str, str], config_path: str | os.PathLike[str] | None = None
) -> Settings:
    """Return validated settings from `environ` over the file at `config_path` over defaults.

    The file's format follows its extension: `.yaml`/`.yml` or `.toml`. Raises `ConfigError`
    whose `path` is the environment variable, the dotted key (`server.port`) or the file.
    """
    info = _settings_info()
    file_data: dict[str, Any] = {}
    if config_path is not None:
        source = os.fspath(config_path)
        file_data = _fold_literals(_read_file(source), info)
        _convert(file_data, info, {}, source)
    overrides, origins = _from_environ(environ, info)
    return _convert(_merge(file_data, _fold_literals(overrides, info)), info, origins, None)


def env_var_names() -> dict[str, str]:
    """Return every environment variable read, mapped to its dotted settings path.

    Names of one field appear in precedence order, the first one set wins.
    """
    return {var.name: var.path for var in _env_vars(_settings_info())}


def _settings_info() -> mi.StructType:
    info = mi.type_info(Settings)
    assert isinstance(info, mi.StructType)
    return info


def _leaves(info: mi.StructType, prefix: str = "") -> list[tuple[str, mi.Type]]:
    leaves: list[tuple[str, mi.Type]] = []
    for field in info.fields:
        path = f"{prefix}{field.encode_name}"
        type_ = _unwrap(field.type)
        if isinstance(type_, mi.StructType):
            leaves.extend(_leaves(type_, f"{path}."))
        else:
            leaves.append((path, type_))
    return leaves


def _env_vars(info: mi.StructType) -> list[_EnvVar]:
    result: list[_EnvVar] = []
    for path, _type in _leaves(info):
        result.append(_EnvVar(_GENERIC_PREFIX + path.replace(".", "_").upper(), path))
        result.extend(var for var in _LEGACY if var.path == path)
    return result


def _from_environ(
    environ: Mapping[str, str], info: mi.StructType
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the nested overrides found in `environ` and the variable behind each path."""
    types = dict(_leaves(info))
    overrides: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for var in _env_vars(info):
        raw = environ.get(var.name)
        if raw is None or var.path in origins:
            continue
        if var.sqlite_path:
            if not raw.strip():
                raise ConfigError(var.name, "expected a SQLite file path, got ''")
            value: object = f"sqlite:///{raw}"
        else:
            value = _parse(var.name, raw, types[var.path])
        *sections, name = var.path.split(".")
        target = overrides
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = value
        origins[var.path] = var.name
    return overrides, origins


def _parse(name: str, raw: str, type_: mi.Type) -> object:
    """Turn the text of variable `name` into a value of `type_`; constraints come later."""
    if isinstance(type_, mi.UnionType):
        if not raw.strip() and any(isinstance(t, mi.NoneType) for t in type_.types):
            return None
        (inner,) = (t for t in type_.types if not isinstance(t, mi.NoneType))
        return _parse(name, raw, _unwrap(inner))
    text = raw.strip().lower()
    if isinstance(type_, mi.BoolType):
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(name, f"expected a boolean (true/false/1/0/yes/no/on/off), got {raw!r}")
    if isinstance(type_, mi.IntType):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if isinstance(type_, mi.FloatType):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(name, f"expected a number, got {raw!r}")
        return number
    return raw


def _read_file(source: str) -> dict[str, Any]:
    suffix = Path(source).suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(
            source, f"unsupported config file type {suffix!r}, expected .yaml, .yml or .toml"
        )
    try:
        content = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(source, f"cannot read config file: {exc.strerror or exc}") from exc
    is_toml = suffix == ".toml"
    try:
        data = msgspec.toml.decode(content) if is_toml else msgspec.yaml.decode(content)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        kind = "TOML" if is_toml else "YAML"
        raise ConfigError(source, f"invalid {kind}: {exc}") from exc
    if data is None:  # an empty YAML document
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected a mapping at the top, got {type(data).__name__}")
    return data


def _fold_literals(data: dict[str, Any], info: mi.StructType) -> dict[str, Any]:
    """Return `data` with string choices (`info` -> `INFO`) spelled as the type spells them."""
    folded = dict(data)
    for field in info.fields:
        value = folded.get(field.encode_name)
        type_ = _unwrap(field.type)
        if isinstance(type_, mi.StructType) and isinstance(value, dict):
            folded[field.encode_name] = _fold_literals(value, type_)
        elif isinstance(type_, mi.LiteralType) and isinstance(value, str):
            for choice in type_.values:
                if isinstance(choice, str) and choice.casefold() == value.casefold():
                    folded[field.encode_name] = choice
    return folded


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


def _convert(
    data: dict[str, Any], info: mi.StructType, origins: Mapping[str, str], source: str | None
) -> Settings:
    """Validate `data` as `Settings`; name a failure by its env var or its dotted path."""
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        match = _ERROR_AT.match(str(exc))
        assert match is not None  # the pattern matches any text
        message, path = match["message"], (match["path"] or "").lstrip(".")
        if unknown := _UNKNOWN_FIELD.match(message):
            known = ", ".join(_keys_at(info, path))
            path = f"{path}.{unknown['field']}" if path else unknown["field"]
            message = f"unknown key, expected one of: {known}"
        message = message[:1].lower() + message[1:] + _hint(info, path)
        if source is not None:
            message = f"{message} (in {source})"
        raise ConfigError(origins.get(path, path) or source or "settings", message) from exc


def _field_type(info: mi.StructType, path: str) -> mi.Type | None:
    """Return the type of the field at dotted `path`, None for no such field."""
    type_: mi.Type = info
    for name in path.split(".") if path else ():
        type_ = _unwrap(type_)
        if not isinstance(type_, mi.StructType):
            return None
        field = next((f for f in type_.fields if f.encode_name == name), None)
        if field is None:
            return None
        type_ = field.type
    return type_


def _keys_at(info: mi.StructType, path: str) -> list[str]:
    type_ = _unwrap(_field_type(info, path) or mi.AnyType())
    return [f.encode_name for f in type_.fields] if isinstance(type_, mi.StructType) else []


def _hint(info: mi.StructType, path: str) -> str:
    """Return what a valid value of the field at `path` looks like, as a message suffix."""
    type_ = _field_type(info, path)
    if isinstance(type_, mi.Metadata) and type_.extra_json_schema:
        description = type_.extra_json_schema.get("description")
        return f" ({description})" if description else ""
    if isinstance(type_, mi.LiteralType):
        return ", expected one of: " + ", ".join(str(value) for value in type_.values)
    return ""


def _unwrap(type_: mi.Type) -> mi.Type:
    while isinstance(type_, mi.Metadata):
        type_ = type_.type
    return type_
