"""Access-token verification for ext-authz: signature, claims, blacklist. No framework, no sockets.

The checks, in order, and what they answer (see ``domains.authz.http`` for the status codes):

1. a token is present and parses, its header says ``alg: ES256`` (the only allowed algorithm, so
   ``none`` and ``HS256`` keyed with the public key are refused before any key is used) and names
   a ``kid`` the auth JWKS publishes → else **401**;
2. the shared claim policy (:func:`eco2.tokens.decode`, pyjwt's own checks): the ES256
   signature, the required claims, times (± leeway), issuer and audience → **401**, except a
   wrong audience → **403**: the token is genuine but not meant for this API;
3. ``typ`` is ``access`` (→ else **403**: a refresh token cannot become one by refreshing) and
   ``provider`` is a short string (→ else 401);
4. the token's session (``sid``) is not on auth's blacklist in Valkey,
   ``authz:revoked:session:<sid>`` (a logout, a reused refresh token) → else **401**; and the
   blacklist is whole, ``authz:blacklist:restored`` is set (auth restores it from its database
   after Valkey lost it, :mod:`domains.auth.blacklist`) → else **503**, never a guess.

A token that passed 1-2 is remembered (a bounded LRU) while its key is still published, so the
signature is not verified again on every request; its expiry (the only check that can change
with time), 3 and 4 run on every request.

:class:`TokenVerifier` is checks 1-3, what Envoy's ``jwt_authn`` filter does in front of
ext_authz (the gateway runs it itself, so a bad token never costs a hop); :class:`AccessCheck` is
ext-authz's whole check, 1-4.

Auth has its own copy of the key formats (domains do not import each other); a unit test in each
package pins the literals.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
import redis.asyncio as aioredis

from eco2 import tokens
from eco2.errors import Eco2Error, Forbidden, Unauthenticated, Unavailable
from eco2.tokens import Rejection, TokenRejected

REVOKED_KEY_PREFIX = "authz:revoked:"
USER_HEADER, PROVIDER_HEADER = "x-user-id", "x-auth-provider"
CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
"""Sent with every 401 of the check (RFC 6750): the client refreshes, then signs in again."""
VERIFIED_CACHE_SIZE = 10_000
"""Tokens whose signature was verified, kept so the same token is not verified again on every
request (a user sends it with each one); ~1 KB each."""
ACCESS = "access"


RESTORED_KEY = "authz:blacklist:restored"


def revoked_session_key(sid: str) -> str:
    """The Valkey key auth sets for a revoked session ``sid``."""
    return f"{REVOKED_KEY_PREFIX}session:{sid}"


@dataclass(frozen=True)
class Principal:
    """Who the request is from: becomes ``x-user-id`` / ``x-auth-provider``."""

    user_id: str
    provider: str

    def headers(self) -> dict[str, str]:
        """What the check answers an allowed request with, for the upstream."""
        return {USER_HEADER: self.user_id, PROVIDER_HEADER: self.provider}


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any | None:
        """The public key published under ``kid``, or None when auth publishes no such key."""
        ...


class RevocationList(Protocol):
    async def is_revoked(self, sid: str) -> bool:
        """Whether session ``sid`` was revoked; :class:`Unavailable` when that cannot be known."""
        ...

    async def ping(self) -> None:
        """Raise :class:`Unavailable` unless the list can be read."""
        ...


class ValkeyRevocationList:
    """Reads auth's blacklist; fails closed (:class:`Unavailable`, 503) when Valkey does."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def is_revoked(self, sid: str) -> bool:
        try:
            revoked, restored = await self._client.mget(revoked_session_key(sid), RESTORED_KEY)
        except (aioredis.RedisError, OSError) as exc:
            raise Unavailable(f"cannot check token revocation ({exc}); retry shortly") from exc
        if restored is None:
            raise _restoring()
        return revoked is not None

    async def ping(self) -> None:
        try:
            restored = await self._client.exists(RESTORED_KEY)
        except (aioredis.RedisError, OSError) as exc:
            raise Unavailable(f"the token blacklist (Valkey) is unreachable: {exc}") from exc
        if not restored:
            raise _restoring()


def _restoring() -> Unavailable:
    return Unavailable(
        "the token blacklist is being restored (Valkey restarted); retry shortly", retry_after_s=2
    )


def _invalid(message: str, code: str = "invalid_token") -> Unauthenticated:
    return Unauthenticated(f"{message}; sign in again or refresh the session", code=code)


def _refused(exc: TokenRejected, audience: str) -> Eco2Error:
    if exc.rejection is Rejection.AUDIENCE:
        return Forbidden(f"this token is not for {audience}", code="wrong_audience")
    codes = {Rejection.EXPIRED: "token_expired", Rejection.MALFORMED: "malformed_token"}
    return _invalid(exc.message, codes.get(exc.rejection, "invalid_token"))


def _check_access(claims: dict[str, Any]) -> None:
    if claims.get("typ") != ACCESS:
        raise Forbidden(
            "only access tokens are accepted here (refresh tokens go to POST /api/v1/auth/refresh)",
            code="wrong_token_type",
        )
    provider = claims.get("provider")
    if not isinstance(provider, str) or not provider or len(provider) > tokens.MAX_ID_CHARS:
        raise _invalid("the token's provider is missing or malformed", "malformed_token")


def token_from(authorization: str | None, cookie: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, else the access cookie's value; raises
    :class:`Unauthenticated` for an ``Authorization`` header of another scheme (refused rather
    than silently ignored)."""
    if authorization is None:
        return cookie or None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "send Authorization: Bearer <access token> (or no Authorization and the cookie)",
            code="malformed_token",
        )
    return token.strip()


def principal_of(claims: dict[str, Any]) -> Principal:
    return Principal(user_id=claims["sub"], provider=claims["provider"])


class TokenVerifier:
    """Checks 1-3 of the module docstring against auth's published keys (no blacklist)."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys, self._clock = keys, clock
        self._issuer, self._audience = issuer, audience
        self._verified: OrderedDict[str, tuple[str, Any, dict[str, Any]]] = OrderedDict()

    async def claims(self, token: str | None) -> dict[str, Any]:
        """The verified claims of an access token; raises :class:`Unauthenticated` (401),
        :class:`Forbidden` (403) or, while the keys cannot be loaded, :class:`Unavailable`."""
        if not token:
            raise Unauthenticated(
                "sign in first: send Authorization: Bearer <access token> or the s_access cookie",
                code="missing_token",
            )
        claims = await self._verified_claims(token)
        _check_access(claims)
        return claims

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        """Checks 1 and 2 of the module docstring, or their remembered outcome."""
        hit = self._verified.get(token)
        if hit is not None and await self._keys.key_for(hit[0]) is hit[1]:
            try:
                tokens.still_valid(hit[2], self._clock())
            except TokenRejected as exc:
                self._verified.pop(token, None)
                raise _refused(exc, self._audience) from exc
            if token in self._verified:
                self._verified.move_to_end(token)
            return hit[2]
        self._verified.pop(token, None)  # never seen, or its key was withdrawn: verify again
        kid, key = await self._signing_key(token)
        try:
            claims = tokens.decode(token, key, issuer=self._issuer, audience=self._audience)
        except TokenRejected as exc:
            raise _refused(exc, self._audience) from exc
        self._verified[token] = (kid, key, claims)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    async def _signing_key(self, token: str) -> tuple[str, Any]:
        if not token.isascii():
            # A JWT is base64url and dots; other bytes (aiohttp hands them on as surrogates)
            # made the JWT library raise UnicodeEncodeError, a 500.
            raise _invalid("the token is not a JWT", "malformed_token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid("the token is not a JWT", "malformed_token") from exc
        if header.get("alg") != tokens.ALGORITHM:
            raise _invalid(f"algorithm {header.get('alg')!r} is not accepted (only ES256)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _invalid("the token names no signing key (kid)")
        key = await self._keys.key_for(kid)
        if key is None:
            raise _invalid("the token was not signed by a key auth publishes")
        return kid, key


class AccessCheck:
    """ext-authz's whole check: the token's claims (:class:`TokenVerifier`), then the blacklist."""

    def __init__(self, verifier: TokenVerifier, revocations: RevocationList) -> None:
        self._verifier, self._revocations = verifier, revocations

    async def verify(self, token: str | None) -> Principal:
        """The principal of ``token``; raises :class:`Unauthenticated` (401), :class:`Forbidden`
        (403) or, when the keys or the blacklist are unreachable, :class:`Unavailable`."""
        claims = await self._verifier.claims(token)
        sid = claims.get("sid")
        if not isinstance(sid, str) or not sid:
            raise _invalid("the token names no session (sid)")
        if await self._revocations.is_revoked(sid):
            raise _invalid("this token's session was ended (logout)", "token_revoked")
        return principal_of(claims)
