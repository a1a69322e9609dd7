"""Auth's public keys, fetched over HTTP and cached: the :class:`~domains.authz.verifier.KeySource`.

:class:`JwksCache` keeps the keys for ``ttl_s``. A ``kid`` it does not know triggers a refetch (a
key rotation), but at most one fetch per ``min_refetch_s``, so tokens with made-up key ids
cannot turn into a flood of requests to auth. When a refetch fails the keys already known stay
in use; when no fetch has ever succeeded, :class:`Unavailable` (503: fail closed, never allow).
Only EC P-256 public keys are taken from the document; anything else in it is ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from eco2.errors import Unavailable
from eco2.telemetry import get_logger

log = get_logger(__name__)
JWKS_PATH = "/api/v1/auth/.well-known/jwks.json"
MIN_REFETCH_S = 5.0


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


class JwksCache:
    """A :class:`~domains.authz.verifier.KeySource` over a :class:`JwksSource` (see above)."""

    def __init__(
        self,
        source: JwksSource,
        *,
        ttl_s: float,
        min_refetch_s: float = MIN_REFETCH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source, self._ttl_s, self._min_refetch_s = source, ttl_s, min_refetch_s
        self._clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl_s
        if not (fresh and kid in self._keys) and self._may_fetch():
            await self._refresh()
        if self._fetched_at is None:
            raise Unavailable("auth's signing keys are not available yet; retry shortly")
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or (
            self._clock() - self._attempted_at >= self._min_refetch_s
        )

    async def _refresh(self) -> None:
        async with self._lock:
            if not self._may_fetch():  # another request refreshed while this one waited
                return
            self._attempted_at = self._clock()
            try:
                document = await self._source.fetch()
            except Exception as exc:  # keep the keys we have; fail closed if we have none
                log.warning("jwks refetch failed", error=str(exc), known_keys=len(self._keys))
                return
            self._keys = parse_jwks(document)
            self._fetched_at = self._clock()
