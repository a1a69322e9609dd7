"""The gateway, being the one base URL, serves one OpenAPI document and one docs page for the
whole public API, merged from every service behind it."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import StackUrls

pytestmark = pytest.mark.e2e


async def test_one_document_lists_every_public_operation_and_nothing_internal(
    stack: StackUrls,
) -> None:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        document = (await client.get("/openapi.json")).json()
        page = await client.get("/docs")
    paths = document["paths"]
    assert "unreachable" not in document["info"]["description"]
    assert "post" in paths["/api/v1/scan"]
    for path in (
        "/api/v1/scan/{job_id}/events",
        "/api/v1/scan/{job_id}/result",
        "/api/v1/auth/dev-login",
        "/api/v1/users/me",
        "/api/v1/character/catalog",
        "/api/v1/notifications/stream",
        "/api/v1/locations/centers",
        "/api/v1/scan/history",
    ):
        assert path in paths, path
    assert not [p for p in paths if p.startswith(("/internal", "/api/v1/admin", "/v1/"))]
    assert paths["/api/v1/scan/{job_id}/events"]["get"]["tags"] == ["streams"]
    assert paths["/api/v1/character/catalog"]["get"]["security"] == []
    assert page.status_code == 200
    assert "/openapi.json" in page.text
