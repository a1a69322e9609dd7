"""The tokens auth issues: ES256 JWTs signed with the active key, the JWKS, and their checks.

Every token carries ``iss``, ``aud``, ``sub`` (user id), ``iat``, ``nbf``, ``exp``, ``jti``,
``typ`` (``access`` | ``refresh``), ``provider`` and ``sid`` (the refresh family, so a logout with
only an access token can end its session), with the key's ``kid`` in the header. The OAuth
``state`` is a token too (``typ`` ``oauth_state``, its own audience, 10 minutes), so no server
state is needed between authorize and callback.

ext-authz (``domains.authz``) checks access tokens with its own copy of these rules; domains do not
import each other, so the revocation key format below is defined there too, and a unit test in
each package pins the literal ``authz:revoked:<jti>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from eco2 import tokens
from eco2.errors import Unauthenticated
from eco2.settings import AuthSettings
from eco2.tokens import Rejection, TokenRejected

REVOKED_KEY_PREFIX = "authz:revoked:"
ALGORITHM = tokens.ALGORITHM
STATE_TTL_S = 600
ACCESS, REFRESH, OAUTH_STATE = "access", "refresh", "oauth_state"

Clock = Callable[[], float]


RESTORED_KEY = "authz:blacklist:restored"
"""Set (to the Valkey server's run id) once the blacklist holds every session revoked within an
access token's life; ext-authz refuses to decide without it."""


def revoked_session_key(sid: str) -> str:
    """The Valkey key that refuses every access token of session ``sid`` (a logout, a reused
    refresh token); it lives as long as the session's last access token may."""
    return f"{REVOKED_KEY_PREFIX}session:{sid}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK: a ``kid`` every process derives alike."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True)
class SigningKey:
    """One EC P-256 key pair: the private half as PEM, the public half as a JWK."""

    kid: str
    private_pem: str
    public_jwk: dict[str, Any]

    @classmethod
    def generate(cls) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
        kid = jwk_thumbprint(jwk)
        return cls(kid, pem, {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})


def _public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    key = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(dict(jwk))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("a published JWK must be a public key")
    return key


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


class TokenService:
    """Signs with the active key; verifies with any key auth published (by ``kid``)."""

    def __init__(
        self,
        settings: AuthSettings,
        active: SigningKey,
        keys: Sequence[SigningKey] = (),
        *,
        clock: Clock = time.time,
    ) -> None:
        self._settings, self._active, self._clock = settings, active, clock
        private = serialization.load_pem_private_key(active.private_pem.encode(), None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError(f"signing key {active.kid} is not an EC key")
        self._private = private
        published = {key.kid: key for key in (*keys, active)}
        self._public = {kid: _public_key(key.public_jwk) for kid, key in published.items()}
        self._jwks = {"keys": [key.public_jwk for key in published.values()]}

    @property
    def active_kid(self) -> str:
        return self._active.kid

    def jwks(self) -> dict[str, Any]:
        """``{"keys": [...]}``: the public JWKs of every key a live token may be signed with."""
        return self._jwks

    def issue(
        self,
        *,
        user_id: str,
        provider: str,
        typ: str,
        family_id: str,
        now: float | None = None,
        jti: str | None = None,
    ) -> IssuedToken:
        """An ``access`` or ``refresh`` token for ``user_id`` in session ``family_id`` (a fresh
        ``jti`` unless given: a refresh token's row is stored before the token is signed)."""
        ttl = self._settings.access_ttl_s if typ == ACCESS else self._settings.refresh_ttl_s
        issued = int(self._clock() if now is None else now)
        jti = jti or str(uuid.uuid4())
        claims = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": user_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": jti,
            "typ": typ,
            "provider": provider,
            "sid": family_id,
        }
        return IssuedToken(self._sign(claims), jti, datetime.fromtimestamp(issued + ttl, UTC))

    def verify(self, token: str, *, typ: str, check_time: bool = True) -> dict[str, Any]:
        """The claims of a ``typ`` token this service signed; :class:`Unauthenticated` otherwise.

        ``check_time=False`` accepts an expired token (logout still ends its session)."""
        return self._verified(token, typ, self._settings.audience, check_time)

    def issue_state(self, provider: str) -> str:
        """A signed, short-lived OAuth ``state`` bound to ``provider``."""
        now = int(self._clock())
        claims = {
            "iss": self._settings.issuer,
            "aud": self._state_audience,
            "sub": provider,
            "iat": now,
            "nbf": now,
            "exp": now + STATE_TTL_S,
            "jti": str(uuid.uuid4()),
            "typ": OAUTH_STATE,
        }
        return self._sign(claims)

    def verify_state(self, state: str, provider: str) -> None:
        """Raise :class:`Unauthenticated` unless ``state`` is ours, fresh and for ``provider``."""
        claims = self._verified(state, OAUTH_STATE, self._state_audience, True)
        if claims["sub"] != provider:
            raise Unauthenticated(
                "the sign-in state belongs to another provider", code="invalid_state"
            )

    @property
    def _state_audience(self) -> str:
        return f"{self._settings.audience}:oauth-state"

    def _sign(self, claims: dict[str, Any]) -> str:
        headers = {"kid": self._active.kid, "typ": "JWT"}
        return jwt.encode(claims, self._private, algorithm=ALGORITHM, headers=headers)

    def _verified(self, token: str, typ: str, audience: str, check_time: bool) -> dict[str, Any]:
        """The claims of a ``typ`` token this service signed for ``audience`` (the shared claim
        policy, :func:`eco2.tokens.decode`); :class:`Unauthenticated` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the token is not a JWT", code="invalid_token") from exc
        key = self._public.get(str(header.get("kid")))
        if header.get("alg") != ALGORITHM or key is None:
            raise Unauthenticated("the token was not signed by this service", code="invalid_token")
        try:
            claims = tokens.decode(
                token,
                key,
                issuer=self._settings.issuer,
                audience=audience,
                check_time=check_time,
            )
        except TokenRejected as exc:
            code = "token_expired" if exc.rejection is Rejection.EXPIRED else "invalid_token"
            raise Unauthenticated(exc.message, code=code) from exc
        if claims.get("typ") != typ:
            raise Unauthenticated(
                f"this is not an {typ} token of this service", code="invalid_token"
            )
        return claims
