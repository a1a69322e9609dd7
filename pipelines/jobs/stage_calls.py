"""Calling a stage deployment through its handle, with the retry policy every pipeline shares.

Contract of :func:`call_stage`:

* a stage's own verdict — :class:`~serve.contracts.ModelCallFailed`, raised inside the stage
  after the model client's retries — passes through at once, unwrapped from Ray's error, so a
  non-retriable failure is never retried here;
* anything else means the call did not reach a live replica or the replica died during it:
  nothing was committed (stages commit nothing; the runner commits after the call returns), so
  the call is repeated, up to ``attempts`` times with jittered backoff, and then raised as a
  retriable ``ModelCallFailed(kind="handle")`` for the runner to dead-letter.
"""

from __future__ import annotations

from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from eco2 import telemetry
from serve.contracts import ModelCallFailed

ATTEMPTS = 3
_log = telemetry.get_logger(__name__)


class _Unreachable(Exception):
    """The handle call failed before the stage gave a verdict."""


async def _call_once(method: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return await method.remote(**kwargs)
    except Exception as exc:
        verdict = exc if isinstance(exc, ModelCallFailed) else getattr(exc, "cause", None)
        if isinstance(verdict, ModelCallFailed):
            raise verdict from exc
        raise _Unreachable(f"{type(exc).__name__}: {exc}") from exc


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    _log.warning("stage call failed; retrying", attempt=state.attempt_number, error=str(error))


async def call_stage(method: Any, *, attempts: int = ATTEMPTS, **kwargs: Any) -> Any:
    """``await method.remote(**kwargs)`` under the policy above; returns the stage's result."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Unreachable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=0.5, max=2.0, jitter=0.25),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _call_once(method, kwargs)
    except _Unreachable as exc:
        raise ModelCallFailed(f"stage unreachable: {exc}", retriable=True, kind="handle") from exc
    raise AssertionError("tenacity ended without an outcome")  # pragma: no cover
