"""Settings of the service: typed, validated, loaded from a file and the environment.

`load_settings(os.environ, path)` is the entry point; `redacted(settings)` is the only view
of the settings that may be printed or logged.
"""

from alert_history.config.loader import env_var_names, load_settings
from alert_history.config.redact import redact_url, redacted
from alert_history.config.settings import (
    DatabaseSettings,
    IngestSettings,
    LLMSettings,
    LogSettings,
    RedisSettings,
    ServerSettings,
    Settings,
)

__all__ = [
    "DatabaseSettings",
    "IngestSettings",
    "LLMSettings",
    "LogSettings",
    "RedisSettings",
    "ServerSettings",
    "Settings",
    "env_var_names",
    "load_settings",
    "redact_url",
    "redacted",
]
