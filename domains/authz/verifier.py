"""Access-token verification for ext-authz: signature, claims, blacklist. No framework, no sockets.

The checks, in order, and what they answer (see ``domains.authz.http`` for the status codes):

1. a token is present and parses, its header says ``alg: ES256`` (the only allowed algorithm, so
   ``none`` and ``HS256`` keyed with the public key are refused before any key is used) and names
   a ``kid`` the auth JWKS publishes, and the ES256 signature verifies → else **401**;
2. ``iat``/``nbf`` are not in the future and ``exp`` has not passed (± :data:`LEEWAY_S`), ``iss`` is
   auth's issuer, ``sub``/``jti``/``provider`` are strings → else **401** (the client refreshes);
3. ``aud`` contains our audience and ``typ`` is ``access`` → else **403**: the token is genuine but
   not meant for this API (e.g. a refresh token), and refreshing would not change that;
4. ``authz:revoked:<jti>`` is not in Valkey (set by auth's logout) → else **401**.

Auth has its own copy of the key format (domains do not import each other); a unit test in each
package pins the literal ``authz:revoked:<jti>``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jwt
import redis.asyncio as aioredis

from eco2.errors import Forbidden, Unauthenticated, Unavailable
from eco2.http import MAX_USER_ID_CHARS

if TYPE_CHECKING:
    from jwt.types import Options

REVOKED_KEY_PREFIX = "authz:revoked:"
VERIFIED_CACHE_SIZE = 10_000
"""Tokens whose signature was verified, kept so the same token is not verified again on every
request (a user sends it with each one); ~1 KB each."""
ALGORITHMS = ("ES256",)
LEEWAY_S = 5
ACCESS = "access"
_REQUIRED = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ"]
_NO_BUILTIN_CLAIM_CHECKS: Options = {  # check_claims does them, with our own status codes
    "require": _REQUIRED,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}


def revoked_key(jti: str) -> str:
    """The Valkey key auth sets on logout for access token ``jti``."""
    return f"{REVOKED_KEY_PREFIX}{jti}"


@dataclass(frozen=True)
class Principal:
    """Who the request is from: becomes ``x-user-id`` / ``x-auth-provider``."""

    user_id: str
    provider: str


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any | None:
        """The public key published under ``kid``, or None when auth publishes no such key."""
        ...


class RevocationList(Protocol):
    async def is_revoked(self, jti: str) -> bool: ...

    async def ping(self) -> None:
        """Raise :class:`Unavailable` unless the list can be read."""
        ...


class ValkeyRevocationList:
    """Reads auth's blacklist; fails closed (:class:`Unavailable`, 503) when Valkey does."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def is_revoked(self, jti: str) -> bool:
        try:
            return bool(await self._client.exists(revoked_key(jti)))
        except (aioredis.RedisError, OSError) as exc:
            raise Unavailable(f"cannot check token revocation ({exc}); retry shortly") from exc

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (aioredis.RedisError, OSError) as exc:
            raise Unavailable(f"the token blacklist (Valkey) is unreachable: {exc}") from exc


def _invalid(message: str, code: str = "invalid_token") -> Unauthenticated:
    return Unauthenticated(f"{message}; sign in again or refresh the session", code=code)


def check_claims(claims: Mapping[str, Any], *, now: float, issuer: str, audience: str) -> None:
    """Steps 2 and 3 of the module docstring on already signature-checked ``claims``."""
    times = [claims.get(name) for name in ("iat", "nbf", "exp")]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
        raise _invalid("the token's iat/nbf/exp are malformed", "malformed_token")
    iat, nbf, exp = (float(t) for t in times)  # type: ignore[arg-type]
    if iat > now + LEEWAY_S or nbf > now + LEEWAY_S:
        raise _invalid("the token is not valid yet")
    if exp <= now - LEEWAY_S:
        raise _invalid("the access token has expired", "token_expired")
    if claims.get("iss") != issuer:
        raise _invalid("the token was not issued by eco2 auth")
    for name in ("sub", "jti", "provider"):
        value = claims.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_USER_ID_CHARS:
            raise _invalid(f"the token's {name} is missing or malformed", "malformed_token")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise Forbidden(f"this token is not for {audience}", code="wrong_audience")
    if claims.get("typ") != ACCESS:
        raise Forbidden(
            "only access tokens are accepted here (refresh tokens go to POST /api/v1/auth/refresh)",
            code="wrong_token_type",
        )


class TokenVerifier:
    """Verifies access tokens against auth's published keys and blacklist."""

    def __init__(
        self,
        keys: KeySource,
        revocations: RevocationList,
        *,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys, self._revocations, self._clock = keys, revocations, clock
        self._issuer, self._audience = issuer, audience
        self._verified: OrderedDict[str, tuple[str, Any, dict[str, Any]]] = OrderedDict()

    async def verify(self, token: str | None) -> Principal:
        """The principal of ``token``; raises :class:`Unauthenticated` (401), :class:`Forbidden`
        (403) or, when the keys or the blacklist are unreachable, :class:`Unavailable`."""
        if not token:
            raise Unauthenticated(
                "sign in first: send Authorization: Bearer <access token> or the s_access cookie",
                code="missing_token",
            )
        claims = await self._signed_claims(token)
        check_claims(claims, now=self._clock(), issuer=self._issuer, audience=self._audience)
        if await self._revocations.is_revoked(claims["jti"]):
            raise _invalid("this token was revoked by a logout", "token_revoked")
        return Principal(user_id=claims["sub"], provider=claims["provider"])

    async def _signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose ES256 signature verifies with a key auth publishes.

        A token verified before is taken from a bounded LRU while its key is still published;
        the claims (times, audience, type) and the blacklist are checked on every request."""
        hit = self._verified.get(token)
        if hit is not None:
            if await self._keys.key_for(hit[0]) is hit[1]:
                if token in self._verified:
                    self._verified.move_to_end(token)
                return hit[2]
            self._verified.pop(token, None)  # its key was withdrawn: verify again
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid("the token is not a JWT", "malformed_token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise _invalid(f"algorithm {header.get('alg')!r} is not accepted (only ES256)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _invalid("the token names no signing key (kid)")
        key = await self._keys.key_for(kid)
        if key is None:
            raise _invalid("the token was not signed by a key auth publishes")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=list(ALGORITHMS), options=_NO_BUILTIN_CLAIM_CHECKS
            )
        except jwt.InvalidSignatureError as exc:
            raise _invalid("the token's signature is not valid") from exc
        except jwt.PyJWTError as exc:
            raise _invalid(f"the token is malformed ({exc})", "malformed_token") from exc
        self._verified[token] = (kid, key, claims)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims
