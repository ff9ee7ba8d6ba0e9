"""The HTTP front: a Quart (trio) app served by Hypercorn."""

from alert_history.http.app import create_app, create_asgi
from alert_history.http.deps import HttpDeps
from alert_history.http.server import serve_http
from alert_history.http.webhook import WebhookLimits

__all__ = ["HttpDeps", "WebhookLimits", "create_app", "create_asgi", "serve_http"]
