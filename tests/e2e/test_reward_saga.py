"""Through the gateway, as the web client does it (cookies only): sign in, upload, scan, follow
the stream, and watch the reward saga reach the character, the profile, the notifications and
the read models; and its compensation when the character domain refuses the grant."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from eco2.migrations import database_dsn
from tests.conftest import StackUrls
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in

pytestmark = pytest.mark.e2e


async def _json(client: httpx.AsyncClient, path: str) -> Any:
    answer = await client.get(path)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
    return answer.json()


async def test_a_rewarded_scan_reaches_character_profile_notifications_and_read_models(
    browser: httpx.AsyncClient,
) -> None:
    user = await sign_in(browser, "saga-e2e")
    result = await rewarded_scan(browser)
    assert result["reward"]["name"] == "페티"
    assert set(result["reward"]) >= {"name", "dialog", "match_reason", "type"}

    async def owned() -> list[dict[str, Any]] | None:
        characters = await _json(browser, "/api/v1/users/me/characters")
        return characters if any(c["code"] == "char-petty" for c in characters) else None

    characters = await eventually(owned, "페티 in /users/me/characters")
    assert {"id", "code", "name", "type", "dialog", "acquired_at"} <= set(characters[0])
    ownership = await _json(browser, "/api/v1/users/me/characters/페티/ownership")
    assert ownership == {"character_name": "페티", "owned": True}
    catalog = await _json(browser, "/api/v1/character/catalog")
    assert {"name", "type", "dialog", "match"} <= set(catalog[0])
    assert "페티" in {c["name"] for c in catalog}

    async def noticed() -> list[dict[str, Any]] | None:
        feed = (await _json(browser, "/api/v1/notifications"))["notifications"]
        kinds = {(n["kind"], n["data"].get("character_code")) for n in feed}
        wanted = {("character_acquired", "char-petty"), ("collection_updated", "char-petty")}
        return feed if wanted <= kinds else None

    await eventually(noticed, "the character and collection notices")

    async def projected() -> dict[str, Any] | None:
        page = await _json(browser, "/api/v1/users/me/page")
        codes = {c["character_code"] for c in page["characters"]}
        return page if "char-petty" in codes and page["updated_at"] else None

    page = await eventually(projected, "the my-page read model")
    assert page["user_id"] == user
    history = (await _json(browser, "/api/v1/scan/history"))["items"]
    assert history[0]["scan_id"] == result["task_id"]
    board = await _json(browser, "/api/v1/character/leaderboard")
    assert board["me"]["owned"] >= 1


async def test_identity_comes_only_from_the_token(
    stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as anonymous:
        forged = await anonymous.get("/api/v1/users/me", headers={"X-User-ID": "someone"})
        assert forged.status_code == 401
    owner = await sign_in(browser, "owner")
    result = await rewarded_scan(browser)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as other:
        await sign_in(other, "other")
        theirs = await other.get(
            f"/api/v1/scan/{result['task_id']}/result", headers={"X-User-ID": owner}
        )
        assert theirs.status_code == 404  # the header is replaced by ext-authz's identity


async def test_a_grant_for_a_deleted_user_is_revoked_and_the_result_says_so(
    stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    user = await sign_in(browser, "leaving")
    assert (await browser.get("/api/v1/users/me")).status_code == 200
    assert (await browser.delete("/api/v1/users/me")).status_code == 204
    conn = await asyncpg.connect(database_dsn(stack.db_url, "eco2_character"))
    try:

        async def character_knows() -> bool | None:
            deleted = await conn.fetchval(
                "SELECT deleted_at FROM character_users WHERE user_id = $1", user
            )
            return True if deleted is not None else None

        await eventually(character_knows, "UserDeleted reaching the character domain")
        result = await rewarded_scan(browser)  # the access token is still valid until it expires

        async def revoked() -> dict[str, Any] | None:
            now = await _json(browser, f"/api/v1/scan/{result['task_id']}/result")
            return now if now["metadata"].get("reward_revoked") else None

        final = await eventually(revoked, "RewardRevoked in the scan result")
        assert final["reward"] is None
        assert final["metadata"]["reward_revoked"]["reason"] == "user_deleted"
        assert "취소" in final["message"]
        owned = await conn.fetchval(
            "SELECT count(*) FROM character_ownerships WHERE user_id = $1", user
        )
        rejected = await conn.fetchval(
            "SELECT count(*) FROM event_store WHERE aggregate_id = $1 "
            "AND event_type = 'CharacterGrantRejected'",
            user,
        )
        assert (owned, rejected) == (0, 1)
    finally:
        await conn.close()
    assert uuid.UUID(result["task_id"])
