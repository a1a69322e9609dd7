"""The character domain's grant rules: decision order, ownership ids, event payloads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domains.character.events import CharacterAcquired, CharacterGrantRejected
from domains.character.model import (
    Character,
    Grant,
    RejectReason,
    Source,
    decide_grant,
    new_ownership,
    ownership_id,
)

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
PETTY = Character(
    code="char-petty",
    name="페티",
    match_label="무색페트병",
    type="생수·음료 투명 페트병",
    dialog="라벨 벗기고 꾹 눌러서, 뚜껑은 닫아서 보내 줘!",
    cdn_code="pet",
)
SCAN_GRANT = Grant("user-1", "char-petty", Source.SCAN, scan_id="scan-1")


def test_the_ownership_id_is_the_originals_uuid5_and_stable() -> None:
    assert ownership_id("user-1", "char-petty") == uuid.UUID("f6d15463-0655-5c41-b744-760ad88282a1")
    assert ownership_id("user-1", "char-petty") == uuid.uuid5(
        uuid.NAMESPACE_DNS, "ownership:user-1:char-petty"
    )
    assert ownership_id("user-2", "char-petty") != ownership_id("user-1", "char-petty")
    assert ownership_id("user-1", "char-eco") != ownership_id("user-1", "char-petty")


def test_a_new_character_is_acquired_with_one_event() -> None:
    decision = decide_grant(SCAN_GRANT, user_deleted=False, character=PETTY, existing=None, now=NOW)
    assert decision.outcome.granted
    assert decision.outcome.rejected is None
    ownership = decision.outcome.ownership
    assert ownership is not None
    assert ownership.id == ownership_id("user-1", "char-petty")
    assert (ownership.source, ownership.scan_id, ownership.status) == (
        Source.SCAN,
        "scan-1",
        "owned",
    )
    assert isinstance(decision.event, CharacterAcquired)


def test_an_owned_character_changes_nothing_and_emits_nothing() -> None:
    existing = new_ownership(SCAN_GRANT, PETTY, datetime(2025, 1, 1, tzinfo=UTC))
    again = Grant("user-1", "char-petty", Source.SCAN, scan_id="scan-2")
    decision = decide_grant(again, user_deleted=False, character=PETTY, existing=existing, now=NOW)
    assert not decision.outcome.granted
    assert decision.outcome.ownership == existing
    assert decision.outcome.rejected is None
    assert decision.event is None


def test_an_unknown_character_is_rejected() -> None:
    grant = Grant("user-1", "char-nobody", Source.SCAN, scan_id="scan-1")
    decision = decide_grant(grant, user_deleted=False, character=None, existing=None, now=NOW)
    assert decision.outcome.rejected is RejectReason.UNKNOWN_CHARACTER
    assert decision.outcome.ownership is None
    assert not decision.outcome.granted
    assert isinstance(decision.event, CharacterGrantRejected)
    assert decision.event.reason == "unknown_character"
    assert decision.event.character_code == "char-nobody"


@pytest.mark.parametrize("character", [PETTY, None])
def test_a_deleted_user_is_rejected_first_even_if_already_owning(
    character: Character | None,
) -> None:
    existing = new_ownership(SCAN_GRANT, PETTY, NOW) if character else None
    decision = decide_grant(
        SCAN_GRANT, user_deleted=True, character=character, existing=existing, now=NOW
    )
    assert decision.outcome.rejected is RejectReason.USER_DELETED
    assert isinstance(decision.event, CharacterGrantRejected)
    assert decision.event.reason == "user_deleted"


def test_character_acquired_carries_the_agreed_payload() -> None:
    decision = decide_grant(SCAN_GRANT, user_deleted=False, character=PETTY, existing=None, now=NOW)
    assert decision.event is not None
    payload = decision.event.model_dump(mode="json")
    assert payload == {
        "ownership_id": "f6d15463-0655-5c41-b744-760ad88282a1",
        "user_id": "user-1",
        "character_id": "char-petty",
        "character_code": "char-petty",
        "character_name": "페티",
        "character_type": "생수·음료 투명 페트병",
        "character_dialog": "라벨 벗기고 꾹 눌러서, 뚜껑은 닫아서 보내 줘!",
        "source": "scan",
        "scan_id": "scan-1",
        "acquired_at": "2025-03-01T09:30:00Z",
    }


def test_an_onboarding_rejection_has_no_scan_id() -> None:
    grant = Grant("user-1", "char-eco", Source.ONBOARD)
    decision = decide_grant(grant, user_deleted=True, character=None, existing=None, now=NOW)
    assert decision.event is not None
    assert decision.event.model_dump(mode="json") == {
        "scan_id": None,
        "user_id": "user-1",
        "character_code": "char-eco",
        "reason": "user_deleted",
        "rejected_at": "2025-03-01T09:30:00Z",
    }


def test_image_url_joins_the_cdn_base_and_cdn_code() -> None:
    assert PETTY.image_url("https://cdn.eco2.local/") == "https://cdn.eco2.local/character/pet.png"
    assert PETTY.id == "char-petty"
