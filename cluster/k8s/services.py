"""Every service of ``runtime.domain_host.SERVICES`` (domains, ext-authz, read models, job
streams) as its own Deployment running the domain host for that one service, HTTP only, with a
Service and a CPU-based HorizontalPodAutoscaler. The replica policy here is the gateway's too."""

from __future__ import annotations

from typing import Any

from cluster.k8s.objects import LABELS, PORT, deployment, eco2_name, python_container, service
from runtime.domain_host import SERVICES

REPLICAS = {"authz": 2, "auth": 2, "my": 2, "character": 2, "gateway": 2}
"""Services on every request's path get two replicas; the rest one (the HPA's minimum)."""
MAX_REPLICAS = {"gateway": 8, "authz": 6, "streams": 6}
"""The HPA's ceiling: the hot path (gateway, sign-in check, job streams) may grow further."""
DEFAULT_MAX_REPLICAS = 4
CPU_TARGET_PERCENT = 70
NO_DATABASE = frozenset({"authz"})
"""Services that open no database (ext-authz: auth's keys over HTTP, the blacklist in Valkey),
so they need not wait for migrations: the sign-in check stays up while PostgreSQL is away."""


def _http_container(name: str) -> dict[str, Any]:
    args = ["-m", "runtime.domain_host", "--host", "0.0.0.0", "--serve", f"{name}={PORT}"]
    container = python_container(args)
    # Ready: the service can serve its traffic (ext-authz: auth's signing keys loaded and the
    # blacklist reachable); live: the process answers.
    ready = {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 5}
    live = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 10}
    container["ports"] = [{"name": "http", "containerPort": PORT}, *container["ports"]]
    container["readinessProbe"] = ready
    container["livenessProbe"] = {**live, "failureThreshold": 6}
    return container


def _autoscaler(name: str, minimum: int, maximum: int) -> dict[str, Any]:
    """CPU-based HPA of a stateless HTTP Deployment. Scale-down waits 5 minutes (the default
    window, written out) so a dip between bursts does not drop replicas that SSE clients hold."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": CPU_TARGET_PERCENT,
                        },
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def scaled(name: str) -> dict[str, Any]:
    """The HPA of service (or ``gateway``) ``name``: from its replica count up to its ceiling."""
    maximum = MAX_REPLICAS.get(name, DEFAULT_MAX_REPLICAS)
    return _autoscaler(eco2_name(name), REPLICAS.get(name, 1), maximum)


def domain_documents() -> list[dict[str, Any]]:
    """Per service of ``SERVICES``: Deployment (HTTP only), Service, HPA."""
    docs: list[dict[str, Any]] = []
    for name in SERVICES:
        full, replicas = eco2_name(name), REPLICAS.get(name, 1)
        migrated = name not in NO_DATABASE
        docs += [
            deployment(full, _http_container(name), replicas, migrated=migrated),
            service(full),
            scaled(name),
        ]
    return docs
