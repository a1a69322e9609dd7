from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domains.auth.events import UserRegistered, UserSignedIn
from domains.auth.model import (
    RefreshRecord,
    RefreshVerdict,
    SignedInUser,
    dev_profile,
    display_name_of,
    judge_refresh,
    sign_in_events,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
RECORD = RefreshRecord(
    jti=uuid.uuid4(),
    user_id=str(uuid.uuid4()),
    family_id=uuid.uuid4(),
    provider="dev",
    display_name="eco",
    expires_at=NOW + timedelta(days=1),
    used_at=None,
    revoked_at=None,
    user_deleted=False,
)


def test_a_fresh_unused_token_rotates() -> None:
    assert judge_refresh(RECORD, NOW) is RefreshVerdict.ROTATE


def test_refusals_in_order() -> None:
    assert judge_refresh(None, NOW) is RefreshVerdict.UNKNOWN
    used = replace(RECORD, used_at=NOW)
    assert judge_refresh(used, NOW) is RefreshVerdict.REUSED
    assert judge_refresh(replace(used, revoked_at=NOW), NOW) is RefreshVerdict.REVOKED
    expired = replace(RECORD, expires_at=NOW)
    assert judge_refresh(expired, NOW) is RefreshVerdict.EXPIRED
    deleted = replace(RECORD, user_deleted=True)
    assert judge_refresh(deleted, NOW) is RefreshVerdict.USER_DELETED


def test_first_sign_in_registers_then_signs_in() -> None:
    user = SignedInUser("u-1", "kakao", "Eco", registered=True)
    events = sign_in_events(user, version=2, at=NOW)
    assert [(v, type(e)) for v, e in events] == [(1, UserRegistered), (2, UserSignedIn)]
    assert events[0][1].model_dump(mode="json") == {
        "user_id": "u-1",
        "provider": "kakao",
        "display_name": "Eco",
        "registered_at": "2025-01-01T00:00:00Z",
    }
    assert events[1][1].model_dump(mode="json") == {
        "user_id": "u-1",
        "provider": "kakao",
        "signed_in_at": "2025-01-01T00:00:00Z",
    }


def test_later_sign_in_only_signs_in() -> None:
    user = SignedInUser("u-1", "kakao", "Eco", registered=False)
    events = sign_in_events(user, version=7, at=NOW)
    assert [(v, type(e)) for v, e in events] == [(7, UserSignedIn)]


def test_dev_profile_uses_the_user_key_as_subject() -> None:
    assert dev_profile("Eco", "key-1") == dev_profile("Eco", "key-1")
    profile = dev_profile(None, "key-1")
    assert (profile.provider, profile.subject) == ("dev", "key-1")
    assert profile.display_name
    assert dev_profile(None, None).subject != dev_profile(None, None).subject


def test_display_name_is_trimmed_or_derived() -> None:
    assert display_name_of("  Eco   Two ", "s") == "Eco Two"
    assert display_name_of("   ", "subject123") == "user-subject1"
    assert len(display_name_of("x" * 500, "s")) == 120
