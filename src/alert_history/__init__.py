"""alert-history: alert history, intelligence and routing for Prometheus Alertmanager."""

__version__ = "0.1.0"
