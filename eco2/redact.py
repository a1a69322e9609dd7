"""Secrets never reach a log line: the redaction every process's log records pass through.

Two rules, applied to every value of a record (nested mappings and sequences included):

* a **key** that names a secret (``password``, ``token``, ``api_key``, ``authorization``,
  ``cookie``, ``secret``, a ``dsn`` …) has its whole value replaced;
* inside any **string** — the message itself, an exception's text, a URL someone logged — the
  shapes of secrets are masked where they stand: JSON Web Tokens, ``Bearer`` credentials, API
  keys (``sk-…``), the password of a URL with credentials, the signature and credential
  parameters of signed URLs, and ``name=value`` pairs whose name is a secret's (cookies, query
  strings, DSNs).

What stays is enough to debug with: the key, the URL's host and path, the token's kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "[redacted]"

_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "signature",
    "session",
    "private_key",
    "dsn",
)
_SECRET_KEY = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)
_FIGURE_KEY = re.compile(r"(?i)(tokens(_(in|out))?|_count|_ms|_s|_at|_flush_ms)$")
"""Counts, durations and times: ``tokens_in``, ``prompt_tokens``, ``session_count`` are figures."""

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT: three base64url parts, the first two starting with '{"' encoded.
    (re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), f"{MASK}:jwt"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), rf"\1 {MASK}"),
    (re.compile(r"\bsk-[\w-]{8,}"), f"{MASK}:api-key"),
    # A cookie header written out: everything after it on the line.
    (re.compile(r"(?i)\b((?:set-)?cookie)(['\"]?\s*[:=]\s*)[^\n]+"), rf"\1\2{MASK}"),
    # scheme://user:password@host → the password masked.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), rf"\1:{MASK}@"),
    # name=value where the name is a secret's: query strings, cookies, DSN options, signed URLs
    # (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, sig, …).
    (
        re.compile(
            r"(?i)\b([\w-]*(?:" + "|".join(_SECRET_WORDS) + r")[\w-]*|sig)"
            r"=(?!\d+\b)([^\s&;,\"']+)"
        ),
        rf"\1={MASK}",
    ),
)


def is_secret_key(key: object) -> bool:
    return (
        isinstance(key, str)
        and _SECRET_KEY.search(key) is not None
        and _FIGURE_KEY.search(key) is None
    )


def redact_text(text: str) -> str:
    """``text`` with every secret shape masked in place."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """``value`` with secrets masked: by key in mappings, by shape in strings, recursively."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (MASK if is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(item) for item in value)
    return value


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor: every field of the record, the message and the rendered
    exception included (run it after ``format_exc_info``)."""
    for key, value in list(event_dict.items()):
        event_dict[key] = MASK if is_secret_key(key) else redact(value)
    return event_dict
