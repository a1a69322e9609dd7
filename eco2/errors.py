"""One error taxonomy for the whole code base, translated to HTTP codes only at the edges.

Adapters raise these ``from`` the driver's exception. ``retriable`` tells a caller whether trying
the same operation again later can succeed; ``code`` is a stable machine-readable identifier and
the message says what the caller should do next.
"""

from __future__ import annotations

import math


class Eco2Error(Exception):
    """Base of every error the project raises on purpose."""

    code: str = "internal_error"
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(Eco2Error):
    """The caller sent something we cannot accept; nothing was changed."""

    code = "invalid_input"


class Unprocessable(InvalidInput):
    """Well-formed, but a value the service cannot work with (an unknown model name)."""

    code = "unprocessable"


class NotFound(Eco2Error):
    code = "not_found"


class Unauthenticated(Eco2Error):
    """No valid credentials: sign in (or refresh the access token) and retry."""

    code = "unauthenticated"


class Forbidden(Eco2Error):
    """Valid credentials that may not do this (revoked token, wrong audience, another's data)."""

    code = "forbidden"


class TooLarge(InvalidInput):
    code = "too_large"


def body_too_large(limit: int) -> TooLarge:
    """A request body past ``limit`` bytes: the gateway's refusal and every service's."""
    return TooLarge(f"the request body is larger than {limit} bytes; send a smaller one")


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"


class Conflict(Eco2Error):
    """A concurrent writer got there first (optimistic concurrency); reload and retry."""

    code = "conflict"
    retriable = True


class Overloaded(Eco2Error):
    """Refused early to protect the service; retry after ``retry_after_s``."""

    code = "overloaded"
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float = 1.0, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class RateLimited(Overloaded):
    """This caller went over its per-user limit for an action (``eco2.ratelimit``); the same
    request is allowed again after ``retry_after_s``. Nothing was changed."""

    code = "rate_limited"

    @classmethod
    def after(cls, retry_after_s: float, action: str, limit: str) -> RateLimited:
        wait_s = max(1, math.ceil(retry_after_s))
        return cls(
            f"too many {action} requests from this account ({limit}); retry in {wait_s} s",
            retry_after_s=retry_after_s,
        )


class Unavailable(Eco2Error):
    """A dependency (database, broker, model endpoint) failed in a way that may pass; the same
    request may succeed after ``retry_after_s``."""

    code = "unavailable"
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float = 2.0, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class PermanentFailure(Eco2Error):
    """Work that will not succeed by retrying (bad model output after repair, bad data)."""

    code = "permanent_failure"
