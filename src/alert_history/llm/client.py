"""Classify one alert through the LLM proxy, with timeouts and retries.

Retries cover what a retry can fix: transport errors, timeouts, 5xx and 429. The delay grows
exponentially with jitter and honours `Retry-After` on 429 (capped). Every attempt is bounded by
`timeout`, and so is a trickling answer. A 4xx other than 429 and an unusable answer are not
retried. Errors leave as `LLMUnavailable` or `LLMProtocolError`, never as httpx exceptions.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio

from alert_history.domain.llm_protocol import (
    LLMProtocolError,
    ParsedAnswer,
    classification_request,
    parse_classification,
)
from alert_history.errors import AlertHistoryError

MAX_ANSWER_BYTES = 1 << 20  # an answer larger than 1 MiB is refused
_encode = msgspec.json.Encoder().encode  # cheaper than httpx's `json=` (stdlib json)


class LLMUnavailable(AlertHistoryError):
    """The LLM proxy did not answer usefully after the allowed retries."""

    def __init__(self, message: str, *, kind: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # timeout | connect | status_5xx | rate_limited | status_4xx
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    initial: float = 0.5
    maximum: float = 10.0
    jitter: float = 0.2
    max_retry_after: float = 30.0

    def delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        return float(base * (1 + self.jitter * (2 * rand - 1)))


class LLMClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/v1/chat/completions"
        self._headers = {"Content-Type": "application/json", "User-Agent": "alert-history"}
        if api_key:
            self._headers["x-litellm-api-key"] = api_key
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.model = model
        self._timeout = timeout
        self._retry = retry
        self._rng = rng or random.Random()

    async def classify(self, alert: Mapping[str, Any]) -> ParsedAnswer:
        """Ask for a classification of `alert` (alertname, status, labels, annotations)."""
        body = classification_request(self.model, alert)
        attempt = 0
        while True:
            try:
                return await self._attempt(body)
            except LLMUnavailable as exc:
                attempt += 1
                if exc.kind == "status_4xx" or attempt > self._retry.max_retries:
                    raise
                await trio.sleep(self._retry.delay(attempt, self._rng.random(), exc.retry_after))

    async def _attempt(self, body: dict[str, Any]) -> ParsedAnswer:
        with trio.move_on_after(self._timeout) as scope:
            try:
                response = await self._http.post(
                    self._url, content=_encode(body), headers=self._headers, timeout=self._timeout
                )
            except httpx.TimeoutException as exc:
                raise LLMUnavailable(f"LLM timed out: {exc!r}", kind="timeout") from None
            except httpx.TransportError as exc:
                raise LLMUnavailable(f"LLM unreachable: {exc!r}", kind="connect") from None
        if scope.cancelled_caught:
            raise LLMUnavailable(f"LLM answered nothing within {self._timeout} s", kind="timeout")
        if response.status_code == 429:
            raise LLMUnavailable(
                "LLM rate limited (429)",
                kind="rate_limited",
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        if response.status_code >= 500:
            raise LLMUnavailable(f"LLM answered {response.status_code}", kind="status_5xx")
        if response.status_code >= 400:
            raise LLMUnavailable(
                f"LLM refused the request: {response.status_code}", kind="status_4xx"
            )
        if len(response.content) > MAX_ANSWER_BYTES:
            raise LLMProtocolError("answer larger than 1 MiB")
        return parse_classification(response.content)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class LLMConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how the LLM is called: the settings an `LLMClient` is built from."""

    base_url: str
    api_key: str | None
    model: str
    timeout: float
    max_retries: int
    concurrency: int  # calls in flight at most: the HTTP pool keeps twice as many connections


def open_llm_client(config: LLMConfig) -> tuple[httpx.AsyncClient, LLMClient]:
    """An `LLMClient` for `config` and the httpx client it uses (the caller closes that)."""
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=config.concurrency * 2), timeout=config.timeout
    )
    client = LLMClient(
        http,
        base_url=config.base_url,
        api_key=config.api_key,
        model=config.model,
        timeout=config.timeout,
        retry=RetryPolicy(max_retries=config.max_retries),
    )
    return http, client
