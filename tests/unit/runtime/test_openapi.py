"""The gateway's one OpenAPI document, merged from the services' own."""

from __future__ import annotations

from typing import Any

from runtime.openapi import merge
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
    assert set(schemas) == {"Session", "my.Session", "HTTPValidationError"}
    me = merged["paths"]["/api/v1/users/me"]["get"]["responses"]["200"]["content"]
    assert me["application/json"]["schema"]["$ref"] == "#/components/schemas/my.Session"
    login = merged["paths"]["/api/v1/auth/dev-login"]["post"]["responses"]["200"]["content"]
    assert login["application/json"]["schema"]["$ref"] == "#/components/schemas/Session"


def test_an_unreachable_service_is_named_in_the_description() -> None:
    merged = merge({}, route_of, unavailable={"image": "ClientConnectorError"})
    assert "image: ClientConnectorError" in merged["info"]["description"]
