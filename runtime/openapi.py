"""One OpenAPI document for the whole public API, merged from the services behind the gateway.

Each service publishes its own ``/openapi.json``; the gateway, being the one base URL, serves
their union at ``/openapi.json`` and a docs page at ``/docs``. :func:`merge` keeps only the
operations the route table sends to the service that documents them (so internal and admin
operations never appear), tags each with its service, states the sign-in it needs (the
``s_access`` cookie or a bearer token) and the gateway's own answers (401/403 for a refused
token, 502/503 for an upstream it cannot reach), and drops the identity headers only the gateway
sets. Schemas of the same name and different content are kept apart as ``<service>.<name>``.
A service with several documents (Ray Serve: one per application) is first made one by
:func:`union`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eco2.http import ERROR_SCHEMA, ERROR_SCHEMA_NAME, error_response
from runtime.routes import Route

REF_PREFIX = "#/components/schemas/"
GATEWAY_HEADERS = frozenset({"x-user-id", "x-auth-provider"})
SECURITY_SCHEMES = {
    "session_cookie": {"type": "apiKey", "in": "cookie", "name": "s_access"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}
SIGNED_IN: list[dict[str, list[str]]] = [{"session_cookie": []}, {"bearer": []}]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
GATEWAY_STATUSES = (502, 503)
"""What the gateway answers itself on any route: the upstream dropped the request, or it is
unreachable, being deployed, or the sign-in check is (503 with ``Retry-After``)."""
UNREADABLE_REQUEST: dict[str, Any] = {
    "schema": {"type": "string"},
    "description": "a request the gateway's HTTP parser cannot read (a header name or value, a "
    "transfer encoding) is refused before any route, in plain text",
}
SIGN_IN_STATUSES = (401, 403)
"""What the gateway answers itself on a signed-in route: no or a bad token, a revoked one."""


def merge(
    documents: Mapping[str, Mapping[str, Any]],
    route_of: Callable[[str], Route | None],
    *,
    title: str = "Eco² API",
    unavailable: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The public document from each service's own (``documents``: service → OpenAPI)."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for service, document in sorted(documents.items()):
        renames = _place_schemas(service, document, schemas)
        for path, item in document.get("paths", {}).items():
            route = route_of(path)
            if route is None or route.service != service:
                continue
            paths[path] = _public_item(_renamed(item, renames), service, route.sign_in)
    description = "Every public operation of the services behind the gateway, in one place."
    if unavailable:
        missing = "; ".join(f"{name}: {why}" for name, why in sorted(unavailable.items()))
        description += f" Not included right now (unreachable): {missing}."
    schemas.setdefault(ERROR_SCHEMA_NAME, ERROR_SCHEMA)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def union(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One document from several of one service (Ray Serve's applications): each one's paths
    under its ``servers`` URL (an application's route prefix), the schemas of all; a name that
    two define differently is kept apart as ``<document title>.<name>``."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for document in documents:
        renames = _place_schemas(str(document.get("info", {}).get("title", "")), document, schemas)
        servers: list[dict[str, str]] = document.get("servers", [])
        root = servers[0].get("url", "").rstrip("/") if servers else ""
        for path, item in document.get("paths", {}).items():
            paths.setdefault(f"{root}{path}", _renamed(item, renames))
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def _place_schemas(
    service: str, document: Mapping[str, Any], schemas: dict[str, Any]
) -> dict[str, str]:
    """Add the service's schemas; return the names it had to change (a clash of content)."""
    renames: dict[str, str] = {}
    own = document.get("components", {}).get("schemas", {})
    for name in own:
        if name in schemas and _canonical(schemas[name]) != _canonical(own[name]):
            renames[name] = f"{service}.{name}"
    for name, schema in own.items():
        schemas.setdefault(renames.get(name, name), _renamed(schema, renames))
    return renames


def _renamed(node: Any, renames: Mapping[str, str]) -> Any:
    if not renames:
        return node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            name = ref.removeprefix(REF_PREFIX)
            return {**node, "$ref": REF_PREFIX + renames.get(name, name)}
        return {key: _renamed(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed(value, renames) for value in node]
    return node


def _public_item(item: Mapping[str, Any], service: str, sign_in: bool) -> dict[str, Any]:
    public = copy.deepcopy(dict(item))
    for method in METHODS:
        operation = public.get(method)
        if not isinstance(operation, dict):
            continue
        operation["tags"] = [service]
        operation["security"] = SIGNED_IN if sign_in else []
        responses = operation.setdefault("responses", {})
        statuses = GATEWAY_STATUSES + (SIGN_IN_STATUSES if sign_in else ())
        if "requestBody" in operation:
            statuses += (413,)  # past the gateway's body limit (settings.api.max_body_bytes)
        for status in statuses:
            responses.setdefault(str(status), error_response(status))
        malformed = responses.setdefault("400", error_response(400))
        malformed.setdefault("content", {}).setdefault("text/plain", UNREADABLE_REQUEST)
        parameters = [
            p
            for p in operation.get("parameters", [])
            if not (p.get("in") == "header" and p.get("name", "").lower() in GATEWAY_HEADERS)
        ]
        if parameters:
            operation["parameters"] = parameters
        else:
            operation.pop("parameters", None)
    return public


def _canonical(node: Any) -> str:
    return json.dumps(node, sort_keys=True)


def docs_page(openapi_url: str, title: str) -> str:
    """A Swagger UI page for ``openapi_url`` (FastAPI's own page, assets from its CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    return bytes(get_swagger_ui_html(openapi_url=openapi_url, title=title).body).decode()
