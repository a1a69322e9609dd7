"""Every error a service sends has the ``{"error": {"code", "message"}}`` shape, the framework's
own refusals included, and its OpenAPI document says so (found by schemathesis: issue 19)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from eco2.http import (
    ERROR_SCHEMA_NAME,
    SSE_EVENT_SCHEMA,
    CurrentUser,
    EventStream,
    error_responses,
    install_error_handlers,
)


class Body(BaseModel):
    name: str


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, example_body='{"name": "x"}')

    @app.post("/things/{thing_id}", responses=error_responses(413))
    async def put_thing(thing_id: int, body: Body, user: CurrentUser) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/catalog")
    async def catalog() -> list[str]:
        return []

    return app


def _error(answer: Any) -> dict[str, str]:
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


def test_a_body_that_is_not_json_is_a_400_in_the_error_shape() -> None:
    client = TestClient(_app())
    answer = client.post(
        "/things/1",
        content=b"\xff\xfe{",
        headers={"Content-Type": "application/json", "X-User-ID": "u"},
    )
    assert answer.status_code == 400
    error = _error(answer)
    assert error["code"] == "invalid_request"
    assert '{"name": "x"}' in error["message"]


def test_a_method_the_path_does_not_answer_is_a_405_in_the_error_shape() -> None:
    answer = TestClient(_app()).delete("/catalog")
    assert answer.status_code == 405
    assert _error(answer)["code"] == "method_not_allowed"
    assert answer.headers["Allow"] == "GET"


def test_the_document_names_the_error_answers_with_the_shape_they_are_sent_in() -> None:
    document = _app().openapi()
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    put = document["paths"]["/things/{thing_id}"]["post"]["responses"]
    assert set(put) == {"200", "400", "401", "404", "413", "422", "503"}
    for status in ("400", "401", "404", "413", "422", "503"):
        assert put[status]["content"]["application/json"]["schema"] == ref, status
    assert "Retry-After" in put["503"]["headers"]
    catalog = document["paths"]["/catalog"]["get"]["responses"]
    assert set(catalog) == {"200", "503"}  # no input: nothing to refuse
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas[ERROR_SCHEMA_NAME]["required"] == ["error"]


def test_a_validation_error_matches_the_documented_422() -> None:
    answer = TestClient(_app()).post("/things/1", json={}, headers={"X-User-ID": "u"})
    assert answer.status_code == 422
    assert _error(answer)["code"] == "invalid_request"


def test_a_text_value_postgres_cannot_store_is_a_400_not_a_500() -> None:
    import asyncpg

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/rename")
    async def rename() -> None:
        raise asyncpg.exceptions.CharacterNotInRepertoireError(
            'invalid byte sequence for encoding "UTF8": 0x00'
        )

    answer = TestClient(app).post("/rename")
    assert answer.status_code == 400
    assert _error(answer)["code"] == "invalid_text"


def test_an_event_stream_is_documented_event_by_event_not_as_a_string() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/events", response_class=EventStream)
    async def events() -> EventStream:
        return EventStream(iter([b"event: done\ndata: {}\n\n"]))

    ok = app.openapi()["paths"]["/events"]["get"]["responses"]["200"]["content"]
    assert ok == {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}
    answer = TestClient(app).get("/events")
    assert answer.headers["content-type"].startswith("text/event-stream")
