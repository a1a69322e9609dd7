"""The my domain's validation rules and event payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from domains.my.model import ProfileEdit, character_added, profile_edited, user_deleted

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "changes"),
    [
        ({"nickname": "분리왕"}, {"nickname": "분리왕"}),
        ({"nickname": "  이코팬  "}, {"nickname": "이코팬"}),
        ({"nickname": "가" * 120}, {"nickname": "가" * 120}),
        ({"phone_number": "010-1234-5678"}, {"phone_number": "010-1234-5678"}),
        ({"phone_number": "0212345678"}, {"phone_number": "0212345678"}),
        ({"phone_number": "1" * 20}, {"phone_number": "1" * 20}),
        (
            {"nickname": "a", "phone_number": "010-0000-0000"},
            {"nickname": "a", "phone_number": "010-0000-0000"},
        ),
        ({}, {}),
        ({"nickname": None}, {}),
    ],
)
def test_accepted_edits_and_what_they_change(body: dict[str, Any], changes: dict[str, str]) -> None:
    assert ProfileEdit.model_validate(body).changes() == changes


@pytest.mark.parametrize(
    "body",
    [
        {"nickname": ""},
        {"nickname": "   "},
        {"nickname": "가" * 121},
        {"phone_number": "010-12-34"},  # 9 characters
        {"phone_number": "123456789"},  # 9 characters
        {"phone_number": "1" * 21},
        {"phone_number": "010 1234 5678"},
        {"phone_number": "+82-10-1234-5678"},
        {"phone_number": "-010-1234-567"},
        {"phone_number": "010-1234-567-"},
        {"display_name": "not editable"},
        {"provider": "google"},
    ],
)
def test_refused_edits(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ProfileEdit.model_validate(body)


def test_profile_updated_payloads() -> None:
    assert character_added("u", "char-petty", 2, NOW).model_dump(mode="json") == {
        "user_id": "u",
        "change": "character_added",
        "character_code": "char-petty",
        "owned_count": 2,
        "updated_at": "2025-03-01T09:30:00Z",
    }
    edited = profile_edited("u", 0, NOW)
    assert (edited.change, edited.character_code, edited.owned_count) == ("profile_edited", None, 0)
    assert user_deleted("u", NOW).model_dump(mode="json") == {
        "user_id": "u",
        "deleted_at": "2025-03-01T09:30:00Z",
    }
