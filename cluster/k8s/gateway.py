"""The gateway: Envoy with the ``jwt_authn`` filter (the access token verified against auth's
JWKS, as the local gateway does in :mod:`runtime.signin`) then the HTTP ext_authz filter pointed
at ``eco2-authz`` (the same ``/check`` protocol the local gateway speaks: the token type and the
blacklist), one route per entry of ``runtime.routes.ROUTES`` with both turned off on the public
ones; commands go to KubeRay's Serve Service. Envoy asks ext_authz on every signed-in request
(it keeps no decision cache; the local gateway remembers an allow for
``api.authz_decision_cache_s``).

The local gateway's adaptive throttle (:mod:`runtime.throttle`) is Envoy's ``admission_control``
filter: the same formula (``sr_threshold`` = 1 / ``api.shed_k``) over the same window, counting
only a 503 as a refusal, on the ``POST`` of each job-starting route (a route of its own, matched
by method, before the route for its other methods) and disabled everywhere else. Two differences
remain: Envoy keeps one set of counts for both job-starting routes (per worker thread), the
local gateway one per route; and Envoy caps its refusals at 80 % of requests. Every 503 Envoy
answers itself carries ``Retry-After`` and the services' error body."""

from __future__ import annotations

import copy
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.k8s.objects import LABELS, PORT, deployment, eco2_name, service
from cluster.k8s.services import REPLICAS, scaled
from domains.authz.jwks import JWKS_PATH
from eco2.settings import ApiSettings, AuthSettings
from runtime.routes import ROUTES, Route

ENVOY_IMAGE = "envoyproxy/envoy:v1.32-latest"
SERVE_SERVICE = "eco2-serve-svc"
"""What KubeRay names the Serve HTTP Service of RayService ``eco2``."""


def _cluster(service_name: str) -> str:
    return SERVE_SERVICE if service_name == "serve" else eco2_name(service_name)


def _match(route: Route) -> dict[str, Any]:
    """Envoy's match for a route: a segment-aware prefix, or a regex where a segment is a
    wildcard (a job id), in the gateway's order (most specific first)."""
    if route.literal:
        return {"path_separated_prefix": route.prefix}
    return {"safe_regex": {"regex": route.regex()}}


JWT_AUTHN = "envoy.filters.http.jwt_authn"
EXT_AUTHZ = "envoy.filters.http.ext_authz"
BUFFER = "envoy.filters.http.buffer"
SIGNED_IN = "signed_in"
"""The jwt_authn requirement of every signed-in route: a valid token of provider ``eco2``."""
_JWT_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtPerRoute"
_EXT_AUTHZ_PER_ROUTE = (
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
)
_BUFFER_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"
ADMISSION_CONTROL = "envoy.filters.http.admission_control"
_FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
POST_ONLY = {"name": ":method", "string_match": {"exact": "POST"}}


def _routes() -> list[dict[str, Any]]:
    """One Envoy route per gateway route, in the gateway's order; a job-starting route's
    ``POST`` first gets a route of its own, the only ones admission control is active on."""
    routes = []
    for route in ROUTES:
        action = {"cluster": _cluster(route.service), "timeout": "0s"}
        if route.shed:
            routes.append(
                {
                    # Copies: YAML would write an object used twice as an alias.
                    "match": {**_match(route), "headers": [copy.deepcopy(POST_ONLY)]},
                    "route": dict(action),
                    **_per_route(route, shed=True),
                }
            )
        routes.append({"match": _match(route), "route": action, **_per_route(route, shed=False)})
    return routes


def _per_route(route: Route, *, shed: bool) -> dict[str, Any]:
    """The filters a route turns off or narrows: sign-in on public routes, the body limit on
    the upload (its body streams on and the image service counts its bytes), admission
    control on all but the job-starting ``POST`` routes (``shed``)."""
    config: dict[str, dict[str, Any]]
    if route.sign_in:
        config = {JWT_AUTHN: {"@type": _JWT_PER_ROUTE, "requirement_name": SIGNED_IN}}
    else:
        config = {
            JWT_AUTHN: {"@type": _JWT_PER_ROUTE, "disabled": True},
            EXT_AUTHZ: {"@type": _EXT_AUTHZ_PER_ROUTE, "disabled": True},
        }
    if route.upload:
        config[BUFFER] = {"@type": _BUFFER_PER_ROUTE, "disabled": True}
    if not shed:
        config[ADMISSION_CONTROL] = {"@type": _FILTER_CONFIG, "disabled": True}
    return {"typed_per_filter_config": config}


def _admission_control_filter() -> dict[str, Any]:
    """Refuses a request with probability ``(requests - accepts × k) / (requests + 1)`` over the
    last ``api.shed_horizon_s``, as :class:`runtime.throttle.AdaptiveThrottle` does; a response
    other than 503 is an accept (a 4xx is the caller's doing, not load)."""
    api = ApiSettings()
    return {
        "name": ADMISSION_CONTROL,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.admission_control.v3."
            "AdmissionControl",
            "success_criteria": {
                "http_criteria": {
                    "http_success_status": [{"start": 100, "end": 503}, {"start": 504, "end": 600}]
                }
            },
            "sampling_window": f"{max(1, round(api.shed_horizon_s))}s",
            "sr_threshold": {
                "default_value": {"value": round(100 / api.shed_k, 2)},
                "runtime_key": "eco2.shed.sr_threshold",
            },
            "aggression": {"default_value": 1.0, "runtime_key": "eco2.shed.aggression"},
        },
    }


def _local_503() -> dict[str, Any]:
    """Envoy's own 503s (admission control, no healthy upstream) answered as a service's
    ``overloaded``: with ``Retry-After`` and the error body clients already handle."""
    return {
        "mappers": [
            {
                "filter": {
                    "status_code_filter": {
                        "comparison": {
                            "op": "EQ",
                            "value": {"default_value": 503, "runtime_key": "eco2.local_503"},
                        }
                    }
                },
                "headers_to_add": [
                    {
                        "header": {"key": "retry-after", "value": "1"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }
                ],
                "body_format_override": {
                    "json_format": {
                        "error": {
                            "code": "overloaded",
                            "message": "The gateway cannot take this request now "
                            "(%LOCAL_REPLY_BODY%); retry after the time given",
                        }
                    }
                },
            }
        ]
    }


def _buffer_filter() -> dict[str, Any]:
    """A body past ``api.max_body_bytes`` is answered 413 before it reaches a service, as the
    local gateway answers it (a body is buffered whole first: every JSON command is small)."""
    return {
        "name": BUFFER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": ApiSettings().max_body_bytes,
        },
    }


def _jwt_authn_filter() -> dict[str, Any]:
    """Signature, times, issuer and audience checked in Envoy against auth's JWKS (cached, as
    ext-authz caches it); the token is forwarded, since ext_authz still reads it."""
    auth = AuthSettings()
    return {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3."
            "JwtAuthentication",
            "providers": {
                "eco2": {
                    "issuer": auth.issuer,
                    "audiences": [auth.audience],
                    "remote_jwks": {
                        "http_uri": {
                            "uri": f"http://{eco2_name('auth')}{JWKS_PATH}",
                            "cluster": eco2_name("auth"),
                            "timeout": "2s",
                        },
                        "cache_duration": f"{int(auth.jwks_cache_s)}s",
                    },
                    "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                    "from_cookies": [auth.access_cookie],
                    "forward": True,
                }
            },
            "requirement_map": {SIGNED_IN: {"provider_name": "eco2"}},
        },
    }


def _ext_authz_filter() -> dict[str, Any]:
    return {
        "name": EXT_AUTHZ,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "http_service": {
                "server_uri": {
                    "uri": "http://eco2-authz",
                    "cluster": eco2_name("authz"),
                    "timeout": "2s",
                },
                "path_prefix": "/check",
                "authorization_request": {
                    "allowed_headers": {
                        "patterns": [{"exact": "authorization"}, {"exact": "cookie"}]
                    }
                },
                "authorization_response": {
                    "allowed_upstream_headers": {
                        "patterns": [{"exact": "x-user-id"}, {"exact": "x-auth-provider"}]
                    }
                },
            },
        },
    }


def _envoy_cluster(name: str) -> dict[str, Any]:
    address = {"socket_address": {"address": name, "port_value": 80}}
    return {
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def envoy_config() -> dict[str, Any]:
    """Envoy's static config: the body limit (buffer), jwt_authn (auth's JWKS), ext_authz (HTTP
    service ``eco2-authz``, path prefix ``/check``), one route per gateway prefix, sign-in
    disabled on the public ones and the body limit on the upload."""
    routes = _routes()
    clusters = sorted(
        {_cluster(r.service) for r in ROUTES} | {eco2_name("authz"), eco2_name("auth")}
    )
    # The body limit first, as in the local gateway: a body too large is 413 before sign-in;
    # the throttle last, so what it counts are the requests a service would see.
    filters = [
        _buffer_filter(),
        _jwt_authn_filter(),
        _ext_authz_filter(),
        _admission_control_filter(),
    ]
    listener = {
        "name": "public",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": PORT}},
        "filter_chains": [{"filters": [_http_manager(routes, filters)]}],
    }
    return {
        "static_resources": {
            "listeners": [listener],
            "clusters": [_envoy_cluster(name) for name in clusters],
        }
    }


def _http_manager(routes: list[dict[str, Any]], checks: list[dict[str, Any]]) -> dict[str, Any]:
    # Client-sent identity headers are removed before ext_authz adds the real ones.
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "eco2",
            "stream_idle_timeout": "300s",
            "local_reply_config": _local_503(),
            "route_config": {
                "request_headers_to_remove": ["x-user-id", "x-auth-provider"],
                "virtual_hosts": [{"name": "eco2", "domains": ["*"], "routes": routes}],
            },
            "http_filters": [
                *checks,
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http."
                        "router.v3.Router"
                    },
                },
            ],
        },
    }


def gateway_documents() -> list[dict[str, Any]]:
    """Envoy's config (ConfigMap), its Deployment (no database, so no wait for migrations),
    Service and HPA."""
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "eco2-gateway-envoy", "labels": LABELS},
        "data": {"envoy.yaml": yaml.safe_dump(envoy_config(), sort_keys=False)},
    }
    container = {
        "name": "envoy",
        "image": ENVOY_IMAGE,
        "args": ["-c", "/etc/envoy/envoy.yaml"],
        "ports": [{"name": "http", "containerPort": PORT}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy"}],
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
        # Requests are what the HPA's utilisation is measured against.
        "resources": {
            "requests": {"cpu": "250m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
    }
    name = eco2_name("gateway")
    gateway = deployment(name, container, REPLICAS["gateway"], migrated=False)
    gateway["spec"]["template"]["spec"]["volumes"] = [
        {"name": "config", "configMap": {"name": "eco2-gateway-envoy"}}
    ]
    return [config, gateway, service(name), scaled("gateway")]
