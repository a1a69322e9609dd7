"""The gateway: Envoy with the HTTP ext_authz filter pointed at ``eco2-authz`` (the same
``/check`` protocol the local gateway speaks), one route per entry of ``runtime.routes.ROUTES``
with ext_authz turned off on the public ones; commands go to KubeRay's Serve Service."""

from __future__ import annotations

from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.k8s.objects import LABELS, PORT, deployment, eco2_name, service
from cluster.k8s.services import REPLICAS, scaled
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


_NO_EXT_AUTHZ = {
    "typed_per_filter_config": {
        "envoy.filters.http.ext_authz": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http."
            "ext_authz.v3.ExtAuthzPerRoute",
            "disabled": True,
        }
    }
}


def _ext_authz_filter() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_authz",
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
    """Envoy's static config: ext_authz (HTTP service ``eco2-authz``, path prefix ``/check``),
    one route per gateway prefix, ext_authz disabled on the public ones."""
    routes = [
        {
            "match": _match(route),
            "route": {"cluster": _cluster(route.service), "timeout": "0s"},
            **({} if route.sign_in else _NO_EXT_AUTHZ),
        }
        for route in ROUTES
    ]
    clusters = sorted({_cluster(r.service) for r in ROUTES} | {eco2_name("authz")})
    listener = {
        "name": "public",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": PORT}},
        "filter_chains": [{"filters": [_http_manager(routes, _ext_authz_filter())]}],
    }
    return {
        "static_resources": {
            "listeners": [listener],
            "clusters": [_envoy_cluster(name) for name in clusters],
        }
    }


def _http_manager(routes: list[dict[str, Any]], ext_authz: dict[str, Any]) -> dict[str, Any]:
    # Client-sent identity headers are removed before ext_authz adds the real ones.
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "eco2",
            "stream_idle_timeout": "300s",
            "route_config": {
                "request_headers_to_remove": ["x-user-id", "x-auth-provider"],
                "virtual_hosts": [{"name": "eco2", "domains": ["*"], "routes": routes}],
            },
            "http_filters": [
                ext_authz,
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
