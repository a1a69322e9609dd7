"""Character payload models, ignored event types and the catalogue shape, without a database."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from domains.character.model import Character
from domains.character.reactions import (
    RewardGrantedIn,
    UserDeletedIn,
    consumer_specs,
    on_profile_event,
    on_scan_event,
)
from domains.character.service import create_app
from eco2.events import EventEnvelope
from eco2.settings import load_settings


def _envelope(event_type: str, payload: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        event_type=event_type,
        aggregate_type="scan",
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        payload=payload,
    )


def test_reward_granted_reads_the_fields_it_needs_from_scans_full_payload() -> None:
    reward = RewardGrantedIn.model_validate(
        {
            "scan_id": "scan-1",
            "user_id": "user-1",
            "character_id": "char-petty",
            "character_code": "char-petty",
            "character_name": "페티",
            "match_label": "무색페트병",
            "match_reason": "무색페트병",
            "reward_type": "character",
            "source": "scan",
        }
    )
    assert (reward.scan_id, reward.user_id, reward.character_code) == (
        "scan-1",
        "user-1",
        "char-petty",
    )
    with pytest.raises(ValidationError):
        RewardGrantedIn.model_validate({"scan_id": "scan-1", "user_id": "user-1"})


def test_user_deleted_needs_a_time() -> None:
    parsed = UserDeletedIn.model_validate(
        {"user_id": "u", "deleted_at": "2025-03-01T00:00:00+00:00"}
    )
    assert parsed.deleted_at.year == 2025
    with pytest.raises(ValidationError):
        UserDeletedIn.model_validate({"user_id": "u"})


@pytest.mark.parametrize("event_type", ["ScanCompleted", "RewardRevoked", "ScanFailed"])
async def test_other_scan_events_are_ignored_without_touching_the_database(
    event_type: str,
) -> None:
    await on_scan_event(_envelope(event_type, {}), None)


async def test_other_profile_events_are_ignored() -> None:
    await on_profile_event(_envelope("ProfileUpdated", {}), None)


def test_consumers_follow_the_topic_convention() -> None:
    specs = {s.name: s for s in consumer_specs()}
    assert specs["character.rewards"].topics == ("outbox.event.scan",)
    assert specs["character.profiles"].topics == ("outbox.event.profile",)
    assert {s.database for s in specs.values()} == {"character"}


async def test_catalog_has_the_compat_keys_and_needs_no_sign_in() -> None:
    app = create_app(load_settings())
    app.state.catalog = [Character("char-eco", "이코", "대표 캐릭터", "대표", "안녕!", "eco")]
    app.state.cdn_base_url = "https://cdn.example"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/v1/character/catalog")
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "이코",
            "type": "대표",
            "dialog": "안녕!",
            "match": "대표 캐릭터",
            "code": "char-eco",
            "image_url": "https://cdn.example/character/eco.png",
        }
    ]


@pytest.mark.parametrize("body", [{}, {"user_id": ""}, {"user_id": "u" * 129}])
async def test_onboarding_needs_a_user_id(body: dict[str, Any]) -> None:
    app = create_app(load_settings())
    app.state.pool = None  # never reached: the body is refused first
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/internal/characters/onboard", json=body)
    assert response.status_code == 422
    assert "user_id" in response.json()["error"]["message"]
