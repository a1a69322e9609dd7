"""A search text with a NUL is the caller's mistake (422), not a database outage (it was a 503
with Retry-After: PostgreSQL text never holds U+0000; found by schemathesis, issue 19)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from domains.location.http import SearchText
from eco2.http import install_error_handlers


def test_a_nul_in_the_search_text_is_refused_before_the_database() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/search")
    async def search(q: SearchText) -> str:
        return q

    client = TestClient(app)
    refused = client.get("/search", params={"q": "캔\x00"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_request"
    assert client.get("/search", params={"q": "캔 수거함"}).status_code == 200
