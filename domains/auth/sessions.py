"""Auth's use cases: sign in (any provider), rotate a refresh token, log out.

A session is a refresh-token family. Signing in starts one; refreshing rotates inside it (the old
refresh token is marked used, a new one stored, both tokens re-issued); logging out revokes it and
puts it on the blacklist that ext-authz reads (:mod:`domains.auth.blacklist`), so none of its access
tokens passes again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from domains.auth.model import REFRESH_REFUSALS, ProviderProfile, RefreshVerdict
from domains.auth.repository import AuthRepository, RefreshGrant
from domains.auth.tokens import ACCESS, REFRESH, IssuedToken, TokenService
from eco2.errors import Unauthenticated
from eco2.events import EventMetadata
from eco2.settings import AuthSettings
from eco2.telemetry import get_logger
from eco2.tokens import LEEWAY_S

log = get_logger(__name__)
SIGN_IN_AGAIN = (
    "sign in again (POST /api/v1/auth/dev-login or GET /api/v1/auth/{provider}/authorize)"
)


@dataclass(frozen=True)
class Session:
    """What a successful sign-in or refresh hands to the client."""

    user_id: str
    provider: str
    display_name: str
    access: IssuedToken
    refresh: IssuedToken
    expires_in: int


class Revocations(Protocol):
    async def revoke(self, sid: str, ttl_s: int) -> None:
        """Refuse every access token of session ``sid`` everywhere for ``ttl_s`` seconds."""
        ...


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class Sessions:
    def __init__(
        self,
        repository: AuthRepository,
        tokens: TokenService,
        revocations: Revocations,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo, self._tokens, self._revocations = repository, tokens, revocations
        self._settings, self._clock = settings, clock

    async def sign_in(self, profile: ProviderProfile, metadata: EventMetadata) -> Session:
        """Register (first time) or sign in the person of ``profile`` and start a session."""
        now = int(self._clock())
        grant = RefreshGrant(uuid.uuid4(), uuid.uuid4(), self._refresh_expiry(now))
        user = await self._repo.sign_in(profile, grant, at=_at(now), metadata=metadata)
        log.info("signed in", user_id=user.user_id, provider=user.provider, new=user.registered)
        return self._session(
            user.user_id, user.provider, user.display_name, grant.family_id, grant.jti, now
        )

    async def refresh(self, refresh_token: str | None) -> Session:
        """Rotate ``refresh_token``; :class:`Unauthenticated` when it is missing, invalid,
        expired, revoked or already used (then its whole session is revoked first)."""
        if not refresh_token:
            raise Unauthenticated(f"no refresh token was sent; {SIGN_IN_AGAIN}", code="no_session")
        try:
            claims = self._tokens.verify(refresh_token, typ=REFRESH)
        except Unauthenticated as exc:
            raise Unauthenticated(f"{exc.message}; {SIGN_IN_AGAIN}", code=exc.code) from exc
        jti = _uuid(claims["jti"])
        now = int(self._clock())
        successor = uuid.uuid4()
        verdict, record = (
            await self._repo.rotate(
                jti, successor, expires_at=self._refresh_expiry(now), at=_at(now)
            )
            if jti is not None
            else (RefreshVerdict.UNKNOWN, None)
        )
        if verdict is not RefreshVerdict.ROTATE or record is None:
            if verdict is RefreshVerdict.REUSED and record is not None:
                log.warning("refresh token reused: session revoked", jti=str(jti))
                await self._revocations.revoke(str(record.family_id), self._access_life_s)
            message = f"{REFRESH_REFUSALS[verdict]}; {SIGN_IN_AGAIN}"
            raise Unauthenticated(message, code=f"refresh_{verdict.value}")
        return self._session(
            record.user_id, record.provider, record.display_name, record.family_id, successor, now
        )

    async def logout(self, access_token: str | None, refresh_token: str | None) -> None:
        """End the session(s) of the presented tokens; tokens that are missing or not ours are
        ignored, expired ones still end their session. Idempotent."""
        families: set[uuid.UUID] = set()
        access = self._claims(access_token, ACCESS)
        refresh = self._claims(refresh_token, REFRESH)
        for claims in (access, refresh):
            family = _uuid(claims.get("sid")) if claims else None
            if family is not None:
                families.add(family)
        now = self._clock()
        for family in families:
            await self._repo.revoke_family(family, at=_at(now))
            await self._revocations.revoke(str(family), self._access_life_s)

    @property
    def _access_life_s(self) -> int:
        """How long an access token issued now may still pass: the blacklist entry's life."""
        return self._settings.access_ttl_s + LEEWAY_S

    def _claims(self, token: str | None, typ: str) -> dict[str, Any] | None:
        if not token:
            return None
        try:
            return self._tokens.verify(token, typ=typ, check_time=False)
        except Unauthenticated:
            return None

    def _refresh_expiry(self, now: int) -> datetime:
        return _at(now + self._settings.refresh_ttl_s)

    def _session(
        self,
        user_id: str,
        provider: str,
        display_name: str,
        family: uuid.UUID,
        refresh_jti: uuid.UUID,
        now: int,
    ) -> Session:
        def issue(typ: str, jti: str | None = None) -> IssuedToken:
            return self._tokens.issue(
                user_id=user_id, provider=provider, typ=typ, family_id=str(family), now=now, jti=jti
            )

        return Session(
            user_id=user_id,
            provider=provider,
            display_name=display_name,
            access=issue(ACCESS),
            refresh=issue(REFRESH, str(refresh_jti)),
            expires_in=self._settings.access_ttl_s,
        )


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
