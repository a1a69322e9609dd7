"""The auth domain's rules, free of I/O: who a sign-in is, and whether a refresh token may rotate.

A person is identified by ``(provider, provider_subject)``: the provider's stable user id
(``kakao``/``google``/``naver``) or, for ``dev``, the caller's ``user_key``. Their first sign-in
registers an account (a new user id); every sign-in issues a fresh session, i.e. a refresh-token
*family*. Refresh tokens rotate: each may be used once, and presenting one that was already used
means it was copied, so the whole family is revoked (reuse detection, RFC 9700 §4.14.2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from domains.auth.events import UserRegistered, UserSignedIn
from eco2.events import Event

OAUTH_PROVIDERS: tuple[str, ...] = ("kakao", "google", "naver")
DEV_PROVIDER = "dev"
MAX_DISPLAY_NAME_CHARS = 120


@dataclass(frozen=True)
class ProviderProfile:
    """What a provider told us about the person signing in."""

    provider: str
    subject: str
    display_name: str


@dataclass(frozen=True)
class SignedInUser:
    user_id: str
    provider: str
    display_name: str
    registered: bool
    """True when this sign-in created the account."""


def display_name_of(name: str | None, subject: str) -> str:
    """The provider's name, trimmed, or a neutral one derived from the subject."""
    cleaned = " ".join((name or "").split())[:MAX_DISPLAY_NAME_CHARS]
    return cleaned or f"user-{subject[:8]}"


def dev_profile(nickname: str | None, user_key: str | None) -> ProviderProfile:
    """The ``dev`` identity: ``user_key`` is the subject (a fresh random one when absent)."""
    subject = user_key or uuid.uuid4().hex
    return ProviderProfile(DEV_PROVIDER, subject, display_name_of(nickname, f"dev-{subject}"))


def sign_in_events(user: SignedInUser, *, version: int, at: datetime) -> list[tuple[int, Event]]:
    """The events of one sign-in with their aggregate versions; ``version`` is the user's new
    version (``UserRegistered`` takes ``version - 1`` when this sign-in registered the account)."""
    signed_in = UserSignedIn(user_id=user.user_id, provider=user.provider, signed_in_at=at)
    if not user.registered:
        return [(version, signed_in)]
    registered = UserRegistered(
        user_id=user.user_id,
        provider=user.provider,
        display_name=user.display_name,
        registered_at=at,
    )
    return [(version - 1, registered), (version, signed_in)]


@dataclass(frozen=True)
class RefreshRecord:
    """The stored state of one refresh token and of its user."""

    jti: uuid.UUID
    user_id: str
    family_id: uuid.UUID
    provider: str
    display_name: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    user_deleted: bool


class RefreshVerdict(Enum):
    ROTATE = "rotate"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"
    """Already used once: a copy is in someone else's hands; revoke the whole family."""
    USER_DELETED = "user_deleted"


def judge_refresh(record: RefreshRecord | None, now: datetime) -> RefreshVerdict:
    """Whether ``record`` may rotate now. Checked in this order: unknown, revoked, reused,
    expired, deleted user (a revoked family stays revoked even when a used token comes back)."""
    if record is None:
        return RefreshVerdict.UNKNOWN
    if record.revoked_at is not None:
        return RefreshVerdict.REVOKED
    if record.used_at is not None:
        return RefreshVerdict.REUSED
    if record.expires_at <= now:
        return RefreshVerdict.EXPIRED
    if record.user_deleted:
        return RefreshVerdict.USER_DELETED
    return RefreshVerdict.ROTATE


REFRESH_REFUSALS: dict[RefreshVerdict, str] = {
    RefreshVerdict.UNKNOWN: "this refresh token is not known",
    RefreshVerdict.EXPIRED: "this refresh token has expired",
    RefreshVerdict.REVOKED: "this session was signed out",
    RefreshVerdict.REUSED: "this refresh token was already used, so the session was revoked",
    RefreshVerdict.USER_DELETED: "this account was deleted",
}
"""Why a refresh was refused; the HTTP layer adds "sign in again"."""
