"""Which provider errors are worth another attempt, how long to wait, and what to tell the user otherwise.

    info = classify(exc)                 # walks Haystack's PipelineRuntimeError down to the SDK exception
    if info.transient and attempt <= retries:
        time.sleep(backoff_delay(attempt, info.retry_after, RetryPolicy()))
    else:
        message = f"{error}; {info.hint}" if info.hint else error

Transient: HTTP 408, 409, 429 and 5xx, timeouts and connection failures (openai/anthropic `APITimeoutError`,
`APIConnectionError`, httpx transport errors, `TimeoutError`, `ConnectionError`). Permanent: 400, 401, 403, 404,
422 and anything else; those get a hint naming what to fix. The optional SDKs are never imported: exceptions are
recognised by their `status_code`, `response.headers` and class names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

#: Class names of timeout / connection failures across openai, anthropic, httpx and the standard library.
_TRANSIENT_NAMES = {
    "APITimeoutError", "APIConnectionError", "Timeout", "TimeoutException", "ReadTimeout", "ConnectTimeout",
    "WriteTimeout", "PoolTimeout", "ConnectError", "ReadError", "WriteError", "RemoteProtocolError",
    "TimeoutError", "ConnectionError", "ConnectionResetError", "ConnectionAbortedError", "ConnectionRefusedError",
    "BrokenPipeError", "ServiceUnavailableError", "InternalServerError", "RateLimitError", "OverloadedError",
}
_TRANSIENT_STATUS = {408, 409, 425, 429}
_CAUSE_DEPTH = 12


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(max_delay, base * 2**(n-1))),
    or the provider's Retry-After (capped at max_retry_after) when it sent one."""

    retries: int = 0
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0


@dataclass
class ErrorInfo:
    transient: bool
    kind: str  # rate_limit | server | timeout | connection | client | other
    status: int | None = None
    retry_after: float | None = None
    hint: str | None = None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (Haystack wraps component errors in PipelineRuntimeError)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < _CAUSE_DEPTH:
        out.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return out


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_seconds(exc: BaseException) -> float | None:
    """Retry-After from the error's HTTP response: `retry-after-ms`, then `retry-after` (seconds or a date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        when = parsedate_to_datetime(str(value))
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def classify(exc: BaseException) -> ErrorInfo:
    """Transient or permanent, with the HTTP status, Retry-After and a fix hint for permanent client errors."""
    chain = _chain(exc)
    for err in chain:
        status = _status(err)
        if status is None:
            continue
        if status in _TRANSIENT_STATUS or status >= 500:
            kind = "rate_limit" if status == 429 else "server"
            return ErrorInfo(True, kind, status, retry_after_seconds(err))
        return ErrorInfo(False, "client", status, None, _STATUS_HINTS.get(status))
    for err in chain:
        names = {cls.__name__ for cls in type(err).__mro__}
        if names & _TRANSIENT_NAMES:
            kind = "timeout" if any("Timeout" in n for n in names) else "connection"
            return ErrorInfo(True, kind)
    return ErrorInfo(False, "other")


_STATUS_HINTS = {
    400: "the provider rejected the request (400): check the component's generation_kwargs and the inputs",
    401: "the provider refused the API key (401): check {keys}",
    403: "the API key has no access to this model or project (403): check the key's permissions for {model}",
    404: "the provider does not know this model or endpoint (404): check the model name {model} "
         "(genops pricing list shows known names) and api_base_url",
    422: "the provider could not process the request (422): check the component's parameters and the inputs",
}


def fix_hint(info: ErrorInfo, key_env_vars: list[str] | None = None, model: str | None = None) -> str | None:
    """The hint for a permanent error, with the pipeline's API-key variables and model filled in."""
    if info.hint is None:
        return None
    keys = " / ".join(sorted(key_env_vars or [])) or "the provider's API key environment variable"
    return info.hint.format(keys=keys, model=repr(model) if model else "")


def backoff_delay(attempt: int, retry_after: float | None, policy: RetryPolicy,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based)."""
    rng = rng or random.Random()
    if retry_after is not None:
        # The provider said when: wait that long, plus a little jitter so concurrent workers don't stampede.
        wait = min(retry_after, policy.max_retry_after)
        return wait + rng.uniform(0, max(0.01, wait * 0.1))
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** max(0, attempt - 1)))
    return rng.uniform(0, ceiling)


def failing_component(exc: BaseException) -> str | None:
    """The component Haystack names on its PipelineRuntimeError, if any."""
    for err in _chain(exc):
        name = getattr(err, "component_name", None)
        if isinstance(name, str):
            return name
    return None
