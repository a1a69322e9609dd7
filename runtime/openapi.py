"""One OpenAPI document for the whole public API, merged from the services behind the gateway.

Each service publishes its own ``/openapi.json``; the gateway, being the one base URL, serves
their union at ``/openapi.json`` and a docs page at ``/docs``. :func:`merge` keeps only the
operations the route table sends to the service that documents them (so internal and admin
operations never appear), tags each with its service, states the sign-in it needs (the
``s_access`` cookie or a bearer token), and drops the identity headers only the gateway sets.
Schemas of the same name and different content are kept apart as ``<service>.<name>``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from runtime.routes import Route

REF_PREFIX = "#/components/schemas/"
GATEWAY_HEADERS = frozenset({"x-user-id", "x-auth-provider"})
SECURITY_SCHEMES = {
    "session_cookie": {"type": "apiKey", "in": "cookie", "name": "s_access"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}
SIGNED_IN: list[dict[str, list[str]]] = [{"session_cookie": []}, {"bearer": []}]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


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
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


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
