"""Notices built from the saga's events, and the feed cursor."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from domains.notification import model
from domains.notification.model import FeedPosition, decode_cursor, encode_cursor
from eco2.errors import InvalidInput
from tests.unit.domains.notification import factories


def test_a_scan_reward_becomes_a_character_notice_keyed_by_the_event() -> None:
    envelope = factories.character_acquired("u1", name="페티", scan_id="scan-9")
    notice = model.notice_from_character_event(envelope)
    assert notice is not None
    assert notice.id == envelope.event_id
    assert notice.user_id == "u1"
    assert notice.kind == "character_acquired"
    assert "새 캐릭터" in notice.title
    assert notice.body.startswith("페티가 ")
    assert notice.data == {
        "character_code": "char-petty",
        "character_name": "페티",
        "source": "scan",
        "scan_id": "scan-9",
    }


def test_the_onboarding_character_gets_a_welcome_text() -> None:
    envelope = factories.character_acquired(
        "u1", code="char-eco", name="이코", source="default-onboard", scan_id=None
    )
    notice = model.notice_from_character_event(envelope)
    assert notice is not None
    assert "첫 캐릭터" in notice.title
    assert notice.body.startswith("이코가 ")
    assert notice.data["source"] == "default-onboard"
    assert notice.data["scan_id"] is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("코튼", "코튼이"),
        ("일렉", "일렉이"),
        ("폼이", "폼이가"),
        ("이코", "이코가"),
        ("Eco", "Eco이(가)"),
    ],
)
def test_the_subject_particle_follows_the_last_syllable(name: str, expected: str) -> None:
    assert model.with_subject_particle(name) == expected


def test_a_character_added_profile_change_becomes_a_collection_notice() -> None:
    envelope = factories.profile_updated("u2", code="char-glassy", owned_count=5)
    notice = model.notice_from_profile_event(envelope)
    assert notice is not None
    assert notice.id == envelope.event_id
    assert notice.user_id == "u2"
    assert notice.kind == "collection_updated"
    assert "5종" in notice.body
    assert notice.data == {"owned_count": 5, "character_code": "char-glassy"}


def test_other_profile_changes_and_other_event_types_make_no_notice() -> None:
    edited = factories.profile_updated("u", change="profile_edited", code=None)
    assert model.notice_from_profile_event(edited) is None
    assert model.notice_from_character_event(factories.grant_rejected("u")) is None
    assert model.notice_from_profile_event(factories.character_acquired("u")) is None


def test_payload_models_ignore_unknown_fields_and_require_the_ones_they_read() -> None:
    payload = {**factories.character_acquired("u").payload, "future_field": 1}
    assert model.CharacterAcquired.model_validate(payload).character_code == "char-petty"
    del payload["character_name"]
    with pytest.raises(ValidationError):
        model.CharacterAcquired.model_validate(payload)
    with pytest.raises(ValidationError):
        model.ProfileUpdated.model_validate({"user_id": "u", "change": "character_added"})
    with pytest.raises(ValidationError):
        model.ProfileUpdated.model_validate(
            {"user_id": "u", "change": "character_added", "owned_count": -1}
        )


def test_a_malformed_event_is_refused_not_skipped() -> None:
    envelope = factories.character_acquired("u")
    broken = envelope.model_copy(update={"payload": {"user_id": "u"}})
    with pytest.raises(ValidationError):
        model.notice_from_character_event(broken)


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2025, 3, 1, 21, 0, 0, 1, tzinfo=timezone(timedelta(hours=9))),
    ],
)
def test_a_cursor_round_trips_exactly(created_at: datetime) -> None:
    position = FeedPosition(created_at, uuid.uuid4())
    cursor = encode_cursor(position)
    assert cursor.isascii()
    assert "=" not in cursor
    assert decode_cursor(cursor) == position


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%%%",
        _b64("{}"),
        _b64('["2025-01-01T00:00:00+00:00"]'),
        _b64('["2025-01-01T00:00:00+00:00", 5]'),
        _b64('["2025-01-01T00:00:00+00:00", "not-a-uuid"]'),
        _b64(f'["2025-01-01T00:00:00", "{uuid.uuid4()}"]'),  # no time zone
        _b64(f'["yesterday", "{uuid.uuid4()}"]'),
        "A" * 500,
    ],
)
def test_a_bad_cursor_is_invalid_input_saying_what_to_do(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="next_cursor") as refused:
        decode_cursor(cursor)
    assert refused.value.code == "invalid_cursor"
