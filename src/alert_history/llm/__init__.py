"""The LLM proxy adapter: an OpenAI-compatible chat-completions client on httpx (trio)."""

from alert_history.llm.client import LLMClient, LLMUnavailable, RetryPolicy

__all__ = ["LLMClient", "LLMUnavailable", "RetryPolicy"]
