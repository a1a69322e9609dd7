"""Kubernetes manifests of the domain services and the gateway, rendered from the same tables the
local launcher uses (``runtime.domain_host.SERVICES``, ``runtime.routes.ROUTES``), so the cluster
and ``eco2 up`` cannot drift apart.

``python -m cluster.k8s > k8s/domains.yaml`` renders them; a test checks the committed file is
current and valid (``python -m devtools.manifests k8s/domains.yaml``). In the cluster:

* each domain service is its own Deployment + Service running ``runtime.domain_host`` for that
  one service and its own reactions (its consumer groups scale with its replicas);
* the read-model API runs its projectors; the scan domain's compensation runs on its own;
* the gateway is Envoy with the HTTP ext_authz filter pointed at ``eco2-authz`` (the same
  ``/check`` protocol the local gateway speaks), routes by the same prefixes, and turns ext_authz
  off on the public routes. Settings come from the ``eco2-config`` ConfigMap and ``eco2-secrets``
  Secret of ``ray-cluster.yaml``.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from runtime.domain_host import SERVICES
from runtime.routes import ROUTES, Route

IMAGE = "ghcr.io/eco2/eco2-on-ray:0.1.0"
PORT = 8000
LABELS = {"app.kubernetes.io/part-of": "eco2-on-ray"}
REPLICAS = {"authz": 2, "auth": 2, "my": 2, "character": 2}
"""Services on every request's path get two replicas; the rest one."""
SERVE_SERVICE = "eco2-serve-svc"
"""What KubeRay names the Serve HTTP Service of RayService ``eco2``."""


def _name(service: str) -> str:
    return f"eco2-{service}"


def _container(service: str | None, consumers: list[str]) -> dict[str, Any]:
    args = ["-m", "runtime.domain_host"]
    if service is not None:
        args += ["--host", "0.0.0.0", "--serve", f"{service}={PORT}"]
    args += ["--consumers", *consumers] if consumers else []
    container: dict[str, Any] = {
        "name": "app",
        "image": IMAGE,
        "command": ["python"],
        "args": args,
        "envFrom": [
            {"configMapRef": {"name": "eco2-config"}},
            {"secretRef": {"name": "eco2-secrets"}},
        ],
        "env": [
            {"name": f"ECO2_SERVICES__{other.upper()}_URL", "value": f"http://{_name(other)}"}
            for other in SERVICES
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
    }
    if service is not None:
        # Ready: the service can serve its traffic (ext-authz: auth's signing keys loaded and
        # the blacklist reachable); live: the process answers.
        ready = {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 5}
        live = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 10}
        container["ports"] = [{"name": "http", "containerPort": PORT}]
        container["readinessProbe"] = ready
        container["livenessProbe"] = {**live, "failureThreshold": 6}
    return container


def _deployment(name: str, container: dict[str, Any], replicas: int) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**LABELS, **selector}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**LABELS, **selector}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
    }


def _service(name: str, target: int | str = "http") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }


def domain_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for service in SERVICES:
        container = _container(service, [service])
        docs += [
            _deployment(_name(service), container, REPLICAS.get(service, 1)),
            _service(_name(service)),
        ]
    docs.append(_deployment(_name("scan-reactions"), _container(None, ["scan"]), 1))
    return docs


def _cluster(service: str) -> str:
    return SERVE_SERVICE if service == "serve" else _name(service)


def _match(route: Route) -> dict[str, Any]:
    """Envoy's match for a route: a segment-aware prefix, or a regex where a segment is a
    wildcard (a job id), in the gateway's order (most specific first)."""
    if route.literal:
        return {"path_separated_prefix": route.prefix}
    return {"safe_regex": {"regex": route.regex()}}


def envoy_config() -> dict[str, Any]:
    """Envoy's static config: ext_authz (HTTP service ``eco2-authz``, path prefix ``/check``),
    one route per gateway prefix, ext_authz disabled on the public ones."""
    routes = [
        {
            "match": _match(route),
            "route": {"cluster": _cluster(route.service), "timeout": "0s"},
            **(
                {}
                if route.sign_in
                else {
                    "typed_per_filter_config": {
                        "envoy.filters.http.ext_authz": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http."
                            "ext_authz.v3.ExtAuthzPerRoute",
                            "disabled": True,
                        }
                    }
                }
            ),
        }
        for route in ROUTES
    ]
    ext_authz = {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "http_service": {
                "server_uri": {
                    "uri": "http://eco2-authz",
                    "cluster": _name("authz"),
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
    clusters = sorted({_cluster(r.service) for r in ROUTES} | {_name("authz")})
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "public",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": PORT}},
                    "filter_chains": [{"filters": [_http_manager(routes, ext_authz)]}],
                }
            ],
            "clusters": [
                {
                    "name": name,
                    "type": "STRICT_DNS",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": name,
                                                    "port_value": 80,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
                for name in clusters
            ],
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
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "eco2-gateway-envoy", "labels": LABELS},
        "data": {"envoy.yaml": yaml.safe_dump(envoy_config(), sort_keys=False)},
    }
    container = {
        "name": "envoy",
        "image": "envoyproxy/envoy:v1.32-latest",
        "args": ["-c", "/etc/envoy/envoy.yaml"],
        "ports": [{"name": "http", "containerPort": PORT}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy"}],
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
    }
    gateway = _deployment(_name("gateway"), container, 2)
    gateway["spec"]["template"]["spec"]["volumes"] = [
        {"name": "config", "configMap": {"name": "eco2-gateway-envoy"}}
    ]
    return [config, gateway, _service(_name("gateway"))]


def render() -> str:
    header = "# GENERATED by `python -m cluster.k8s`; edit cluster/k8s.py, not this file.\n"
    docs = [*domain_documents(), *gateway_documents()]
    return header + str(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))


if __name__ == "__main__":
    sys.stdout.write(render())
