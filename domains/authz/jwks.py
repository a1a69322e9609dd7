"""Auth's public keys, fetched over HTTP and cached: the :class:`~domains.authz.verifier.KeySource`.

:class:`JwksCache` contract:

* **loaded before ready** — :meth:`JwksCache.start` begins loading at once; until one fetch has
  succeeded :attr:`JwksCache.ready` is False (ext-authz's ``/readyz`` answers 503, so neither the
  launcher nor a Kubernetes readiness probe sends it traffic). A failed first fetch is retried
  with a short jittered exponential backoff, never a fixed blackout;
* **never blank under load** — keys are refreshed in the background before they are
  ``ttl_s`` old; a failed refresh keeps the last good keys and is retried with backoff. A request
  for a known ``kid`` never waits for a fetch;
* **rotation** — a ``kid`` the cache does not know triggers a refetch, at most one at a time
  (concurrent requests share it) and at most one per ``min_refetch_s``, so tokens with made-up
  key ids cannot turn into a flood of requests to auth;
* **fail closed** — only while no key was ever loaded: :class:`~eco2.errors.Unavailable` (503
  with ``Retry-After``), never an allow.

Only EC P-256 public keys are taken from the document; anything else in it is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from eco2.errors import Unavailable
from eco2.telemetry import get_logger

log = get_logger(__name__)
JWKS_PATH = "/api/v1/auth/.well-known/jwks.json"
MIN_REFETCH_S = 5.0
REFRESH_AT = 0.8
"""Refresh when the keys are this fraction of ``ttl_s`` old, so they never expire in use."""
RETRY_INITIAL_S, RETRY_MAX_S = 0.1, 2.0
NOT_LOADED_RETRY_AFTER_S = 1.0


class JwksSource(Protocol):
    async def fetch(self) -> Mapping[str, Any]:
        """The JWKS document ``{"keys": [...]}``; raises :class:`Unavailable` on failure."""
        ...


class HttpJwksSource:
    """``GET <auth>/api/v1/auth/.well-known/jwks.json`` with the given client."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client, self._url = client, url

    async def fetch(self) -> Mapping[str, Any]:
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"cannot fetch auth's JWKS from {self._url}: {exc}") from exc
        if not isinstance(document, dict):
            raise Unavailable(f"auth's JWKS at {self._url} is not a JSON object")
        return document


def parse_jwks(document: Mapping[str, Any]) -> dict[str, ec.EllipticCurvePublicKey]:
    """``kid`` → public key for every usable ES256 signing key in ``document``."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    entries = document.get("keys")
    for jwk in entries if isinstance(entries, list) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
            continue
        if jwk.get("alg", "ES256") != "ES256" or jwk.get("use", "sig") != "sig":
            continue
        try:
            key = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(jwk)
        except Exception:  # a malformed entry must not hide the good ones
            continue
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys[jwk["kid"]] = key
    return keys


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait_s = state.next_action.sleep if state.next_action else 0.0
    log.warning(
        "jwks fetch failed; retrying",
        error=str(error),
        attempt=state.attempt_number,
        retry_in_s=round(wait_s, 2),
    )


class JwksCache:
    """A :class:`~domains.authz.verifier.KeySource` over a :class:`JwksSource` (see above)."""

    def __init__(
        self,
        source: JwksSource,
        *,
        ttl_s: float,
        min_refetch_s: float = MIN_REFETCH_S,
        retry_initial_s: float = RETRY_INITIAL_S,
        retry_max_s: float = RETRY_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source, self._ttl_s, self._min_refetch_s = source, ttl_s, min_refetch_s
        self._wait = wait_exponential_jitter(
            initial=retry_initial_s, max=retry_max_s, jitter=retry_initial_s
        )
        self._clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self.fetches = 0

    @property
    def ready(self) -> bool:
        """At least one fetch succeeded: a valid token can be verified."""
        return self._loaded_at is not None

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    async def start(self) -> None:
        """Begin loading now and keep the keys fresh in the background until :meth:`stop`."""
        if self._maintainer is None:
            self._fetch_shared()  # requests arriving before the first load join this fetch
            self._maintainer = asyncio.create_task(self._maintain(), name="jwks-refresh")

    async def stop(self) -> None:
        for task in (self._maintainer, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._maintainer = self._inflight = None

    async def key_for(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        if not self.ready:
            await self._join_first_load()
        elif self._may_refetch():
            with contextlib.suppress(Exception):  # logged by the maintainer; old keys stay
                await self._fetch_shared()
        return self._keys.get(kid)

    async def _join_first_load(self) -> None:
        """Wait for a fetch under way; with none (backing off) or a failed one: 503."""
        if self._inflight is not None and not self._inflight.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._inflight)
        if not self.ready:
            raise Unavailable(
                "the sign-in check has not loaded auth's signing keys yet; retry in a second",
                retry_after_s=NOT_LOADED_RETRY_AFTER_S,
            )

    def _may_refetch(self) -> bool:
        return self._attempted_at is None or (
            self._clock() - self._attempted_at >= self._min_refetch_s
        )

    def _fetch_shared(self) -> asyncio.Future[None]:
        """The fetch under way, or a new one: concurrent callers share one request to auth."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch_once())
            # A failure nobody awaited must not be reported as "never retrieved".
            self._inflight.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._inflight

    async def _fetch_once(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        document = await self._source.fetch()
        self._keys = parse_jwks(document)
        self._loaded_at = self._clock()

    async def _load(self) -> None:
        """One successful fetch, retried with jittered exponential backoff until it succeeds."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=self._wait,
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await asyncio.shield(self._fetch_shared())

    async def _maintain(self) -> None:
        while True:
            await self._load()
            age = self._clock() - (self._loaded_at or self._clock())
            await asyncio.sleep(max(0.0, self._ttl_s * REFRESH_AT - age))
