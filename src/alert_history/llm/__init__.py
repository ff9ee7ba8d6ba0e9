"""The LLM proxy adapter: an OpenAI-compatible chat-completions client on httpx (trio), in the
service's process (`LLMClient`) or in a worker process of its own (`LLMWorker`)."""

from collections.abc import Mapping
from typing import Any, Protocol

from alert_history.domain.llm_protocol import ParsedAnswer
from alert_history.llm.client import (
    LLMClient,
    LLMConfig,
    LLMUnavailable,
    RetryPolicy,
    open_llm_client,
)
from alert_history.llm.worker import LLMWorker, LLMWorkerExited, LLMWorkerLost, WorkerConfig


class LLM(Protocol):
    """What the classification service asks of an LLM client."""

    @property
    def model(self) -> str: ...

    async def classify(self, alert: Mapping[str, Any]) -> ParsedAnswer: ...


__all__ = [
    "LLM",
    "LLMClient",
    "LLMConfig",
    "LLMUnavailable",
    "LLMWorker",
    "LLMWorkerExited",
    "LLMWorkerLost",
    "RetryPolicy",
    "WorkerConfig",
    "open_llm_client",
]
