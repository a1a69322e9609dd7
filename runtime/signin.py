"""The gateway's own half of the sign-in check: what Envoy's ``jwt_authn`` filter does in the
cluster, plus a short memory of ext-authz's answers.

For a route that needs sign-in the gateway first verifies the access token itself against auth's
published keys (:class:`~domains.authz.verifier.TokenVerifier`: signature, times, issuer,
audience, token type), so a missing, forged or expired token is refused without a hop. Only a
token that passes is sent to ext-authz, whose remaining say is the blacklist (a logout revokes a
token that is otherwise still valid). Its *allow* is remembered per token id for
``api.authz_decision_cache_s`` (a few seconds, at most ``DECISIONS_MAX`` tokens): a user's submit
and the stream opened right after it cost one ext-authz call, not two. A refusal is never
remembered, and a revoked token passes for at most that long after the logout; ``0`` asks
ext-authz on every request, as Envoy's ext_authz filter does in Kubernetes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx

from domains.authz.jwks import JWKS_PATH, HttpJwksSource, JwksCache, JwksSource
from domains.authz.verifier import TokenVerifier, token_from
from eco2.settings import Settings

DECISIONS_MAX = 10_000


class Decisions:
    """ext-authz's recent allows by token id: each one good for ``ttl_s``, the oldest forgotten
    first past ``size``."""

    def __init__(
        self, ttl_s: float, size: int = DECISIONS_MAX, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s, self._size, self._clock = ttl_s, size, clock
        self._allowed: OrderedDict[str, float] = OrderedDict()

    def allowed(self, jti: str) -> bool:
        """ext-authz allowed this token less than ``ttl_s`` ago."""
        at = self._allowed.get(jti)
        if at is None:
            return False
        if self._clock() - at < self._ttl_s:
            return True
        del self._allowed[jti]
        return False

    def allow(self, jti: str) -> None:
        if self._ttl_s <= 0:
            return
        self._allowed[jti] = self._clock()
        self._allowed.move_to_end(jti)
        while len(self._allowed) > self._size:
            self._allowed.popitem(last=False)


class SignIn:
    """The token checks the gateway runs itself, with auth's keys kept fresh in the background
    (``start``/``stop``); ``jwks`` replaces the HTTP key source in tests."""

    def __init__(self, settings: Settings, *, jwks: JwksSource | None = None) -> None:
        self._settings, self._jwks = settings, jwks
        self._stack = AsyncExitStack()
        self._keys: JwksCache | None = None
        self._verifier: TokenVerifier | None = None
        self.decisions = Decisions(settings.api.authz_decision_cache_s)

    async def start(self) -> None:
        source = self._jwks
        if source is None:
            client = httpx.AsyncClient(timeout=self._settings.services.call_timeout_s)
            self._stack.push_async_callback(client.aclose)
            source = HttpJwksSource(client, self._settings.services.url_of("auth") + JWKS_PATH)
        self._keys = JwksCache(source, ttl_s=self._settings.auth.jwks_cache_s)
        await self._keys.start()
        self._stack.push_async_callback(self._keys.stop)
        auth = self._settings.auth
        self._verifier = TokenVerifier(self._keys, issuer=auth.issuer, audience=auth.audience)

    async def stop(self) -> None:
        await self._stack.aclose()

    @property
    def ready(self) -> bool:
        """Auth's keys are loaded: a valid token can be verified here."""
        return self._keys is not None and self._keys.ready

    async def claims(self, authorization: str | None, cookie: str | None) -> dict[str, Any]:
        """The verified claims of the request's access token (the ``Authorization`` header's
        bearer token, else the access cookie's value); raises
        :class:`~eco2.errors.Unauthenticated`, :class:`~eco2.errors.Forbidden` or, while auth's
        keys cannot be loaded, :class:`~eco2.errors.Unavailable`."""
        assert self._verifier is not None, "the sign-in check is not started"
        return await self._verifier.claims(token_from(authorization, cookie))
