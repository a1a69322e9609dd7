"""The gateway's one OpenAPI document, merged from the services' own."""

from __future__ import annotations

from typing import Any

from runtime.openapi import merge, union
from runtime.routes import route_of


def _doc(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas or {}}}


def _op(ref: str | None = None, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "parameters": [{"name": h, "in": "header", "schema": {"type": "string"}} for h in headers],
        "responses": {"200": {"description": "ok"}},
    }
    if ref:
        operation["responses"]["200"]["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}
        }
    return operation


def test_only_routed_operations_of_their_own_service_appear_marked_with_their_sign_in() -> None:
    documents = {
        "serve": _doc(
            {
                "/api/v1/scan": {"post": _op(headers=("x-user-id", "x-idempotency-key"))},
                "/api/v1/admin/scan/reprocess": {"post": _op()},  # never routed
                "/api/v1/scan/{job_id}/events": {"get": _op()},  # the read side's, not Serve's
            }
        ),
        "streams": _doc(
            {
                "/api/v1/scan/{job_id}/events": {"get": _op(headers=("x-user-id",))},
                "/api/v1/scan/categories": {"get": _op()},
            }
        ),
    }
    merged = merge(documents, route_of)
    assert set(merged["paths"]) == {
        "/api/v1/scan",
        "/api/v1/scan/{job_id}/events",
        "/api/v1/scan/categories",
    }
    submit = merged["paths"]["/api/v1/scan"]["post"]
    assert submit["tags"] == ["serve"]
    assert submit["security"] == [{"session_cookie": []}, {"bearer": []}]
    assert [p["name"] for p in submit["parameters"]] == ["x-idempotency-key"]  # no x-user-id
    events = merged["paths"]["/api/v1/scan/{job_id}/events"]["get"]
    assert events["tags"] == ["streams"]
    assert "parameters" not in events
    assert merged["paths"]["/api/v1/scan/categories"]["get"]["security"] == []
    assert set(merged["components"]["securitySchemes"]) == {"session_cookie", "bearer"}


def test_schemas_of_the_same_name_are_shared_when_equal_and_kept_apart_when_not() -> None:
    error = {"type": "object", "properties": {"detail": {"type": "string"}}}
    documents = {
        "auth": _doc(
            {"/api/v1/auth/dev-login": {"post": _op("Session")}},
            {"Session": {"type": "object", "title": "auth"}, "HTTPValidationError": error},
        ),
        "my": _doc(
            {"/api/v1/users/me": {"get": _op("Session")}},
            {"Session": {"type": "object", "title": "my"}, "HTTPValidationError": error},
        ),
    }
    merged = merge(documents, route_of)
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"Session", "my.Session", "HTTPValidationError", "Error"}
    me = merged["paths"]["/api/v1/users/me"]["get"]["responses"]["200"]["content"]
    assert me["application/json"]["schema"]["$ref"] == "#/components/schemas/my.Session"
    login = merged["paths"]["/api/v1/auth/dev-login"]["post"]["responses"]["200"]["content"]
    assert login["application/json"]["schema"]["$ref"] == "#/components/schemas/Session"


def test_an_unreachable_service_is_named_in_the_description() -> None:
    merged = merge({}, route_of, unavailable={"image": "ClientConnectorError"})
    assert "image: ClientConnectorError" in merged["info"]["description"]


def test_the_gateway_documents_its_own_answers_on_every_routed_operation() -> None:
    documents = {
        "character": _doc(
            {
                "/api/v1/character/catalog": {"get": _op()},
                "/api/v1/character/me": {"get": _op(headers=("x-user-id",))},
            }
        )
    }
    paths = merge(documents, route_of)["paths"]
    public = paths["/api/v1/character/catalog"]["get"]["responses"]
    signed_in = paths["/api/v1/character/me"]["get"]["responses"]
    assert set(public) == {"200", "400", "502", "503"}
    assert set(signed_in) == {"200", "400", "401", "403", "502", "503"}
    # aiohttp's parser refuses an unreadable header before any route, in plain text (found by
    # the fuzz test: a generated `transfer-encoding: X=J` on a GET).
    assert set(public["400"]["content"]) == {"application/json", "text/plain"}
    body = {**_op(), "requestBody": {"content": {"application/json": {"schema": {}}}}}
    posted = merge({"serve": _doc({"/api/v1/scan": {"post": body}})}, route_of)
    posted_responses = posted["paths"]["/api/v1/scan"]["post"]["responses"]
    assert "413" in posted_responses
    assert "text/plain" in posted_responses["400"]["content"]
    assert "Retry-After" in signed_in["503"]["headers"]


def test_serve_applications_are_one_document_each_under_its_route_prefix() -> None:
    scan = _doc({"/api/v1/scan": {"post": _op("Job")}}, {"Job": {"title": "scan"}})
    chat = {
        **_doc({"/{chat_id}/messages": {"post": _op("Job")}}, {"Job": {"title": "chat"}}),
        "info": {"title": "chat"},
        "servers": [{"url": "/api/v1/chat"}],
    }
    one = union([scan, chat])
    assert set(one["paths"]) == {"/api/v1/scan", "/api/v1/chat/{chat_id}/messages"}
    assert set(one["components"]["schemas"]) == {"Job", "chat.Job"}
    merged = merge({"serve": one}, route_of)
    assert "/api/v1/chat/{chat_id}/messages" in merged["paths"]


def test_the_gateway_asks_every_serve_application_for_its_document() -> None:
    from cluster.serve_config import manifest_serve_config
    from runtime.gateway import SERVE_APPLICATION_PREFIXES

    prefixes = {app["route_prefix"] for app in manifest_serve_config()["applications"]}
    assert set(SERVE_APPLICATION_PREFIXES) == prefixes
