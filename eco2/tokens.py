"""Verifying the project's JWTs: one claim policy for auth and ext-authz, through pyjwt's options.

:func:`decode` verifies the ES256 signature with the given key and, through pyjwt's own options,
that every claim of :data:`REQUIRED` is present, that ``iat``/``nbf`` are not in the future and
``exp`` has not passed (± :data:`LEEWAY_S`), that ``iss`` is the issuer and ``aud`` names the
audience (a string, or a list containing it). On top, what pyjwt lets through: times that are
booleans (pyjwt reads ``True`` as 1), and ``sub``/``jti`` that are not short non-empty strings.

Failures raise :class:`TokenRejected` with a :class:`Rejection`; each edge turns it into its
own answer (auth: always 401; ext-authz: a wrong audience is 403, refreshing cannot fix it).
The token type (``typ``) is the caller's to check: what is acceptable differs per endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import jwt

ALGORITHM = "ES256"
LEEWAY_S = 5
REQUIRED = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ")
MAX_ID_CHARS = 128


class Rejection(StrEnum):
    MALFORMED = "malformed_token"
    SIGNATURE = "invalid_signature"
    EXPIRED = "token_expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUER = "wrong_issuer"
    AUDIENCE = "wrong_audience"


class TokenRejected(Exception):
    def __init__(self, rejection: Rejection, message: str) -> None:
        super().__init__(message)
        self.rejection, self.message = rejection, message


_PYJWT_ERRORS: tuple[tuple[type[jwt.PyJWTError], Rejection, str], ...] = (
    (jwt.ExpiredSignatureError, Rejection.EXPIRED, "the token has expired"),
    (jwt.ImmatureSignatureError, Rejection.NOT_YET_VALID, "the token is not valid yet"),
    (jwt.InvalidAudienceError, Rejection.AUDIENCE, "the token is not for this audience"),
    (jwt.InvalidIssuerError, Rejection.ISSUER, "the token was not issued by eco2 auth"),
    (jwt.InvalidSignatureError, Rejection.SIGNATURE, "the token's signature is not valid"),
)


def decode(
    token: str, key: Any, *, issuer: str, audience: str, check_time: bool = True
) -> dict[str, Any]:
    """The verified claims of ``token`` (see the module docstring); ``check_time=False`` also
    accepts a token whose times have passed (logout still ends an expired session)."""
    options: Any = {
        "require": list(REQUIRED),
        "verify_exp": check_time,
        "verify_nbf": check_time,
        "verify_iat": check_time,
    }
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY_S,
            options=options,
        )
    except jwt.PyJWTError as exc:
        for kind, rejection, message in _PYJWT_ERRORS:
            if isinstance(exc, kind):
                raise TokenRejected(rejection, message) from exc
        raise TokenRejected(Rejection.MALFORMED, f"the token is malformed ({exc})") from exc
    _check_shapes(claims)
    return claims


def _check_shapes(claims: Mapping[str, Any]) -> None:
    if any(isinstance(claims.get(name), bool) for name in ("iat", "nbf", "exp")):
        raise TokenRejected(Rejection.MALFORMED, "the token's iat/nbf/exp are malformed")
    for name in ("sub", "jti"):
        value = claims.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
            raise TokenRejected(Rejection.MALFORMED, f"the token's {name} is missing or malformed")


def still_valid(claims: Mapping[str, Any], now: float | None = None) -> None:
    """For claims :func:`decode` accepted earlier: raise unless ``exp`` has still not passed
    (``iat``/``nbf`` cannot become invalid later)."""
    if float(claims["exp"]) <= (time.time() if now is None else now) - LEEWAY_S:
        raise TokenRejected(Rejection.EXPIRED, "the token has expired")
