"""The building blocks of every Deployment and Job rendered here: the project image's Python
container with the shared settings, the init container that waits for the migrations, and the
Deployment and Service around them."""

from __future__ import annotations

from typing import Any

from runtime.domain_host import SERVICES

IMAGE = "ghcr.io/eco2/eco2-on-ray:0.1.0"
"""The one image (``Dockerfile``) of every container here and of ``ray-cluster.yaml``."""
PORT = 8000
METRICS_PORT = 9464
"""Every Python container serves its Prometheus metrics here (``/metrics``); the Pods carry the
``prometheus.io/*`` annotations a Prometheus with Kubernetes discovery scrapes by."""
LABELS = {"app.kubernetes.io/part-of": "eco2-on-ray"}
RUN_DIR = "/tmp/eco2"
"""``ECO2_RUN_DIR`` in the Pods: the relay writes its status file there (the image's work
directory is read-only to the ``ray`` user in some clusters)."""
MIGRATE_MODULE = "eco2.migrations"
"""``python -m eco2.migrations [--wait]``: the migration Job and the init containers. It imports
the kernel only, so waiting for the migrations does not load the services."""


SCRAPED = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(METRICS_PORT),
    "prometheus.io/path": "/metrics",
}


def eco2_name(part: str) -> str:
    """``eco2-<part>``: a rendered object's name (also its Pods' ``app.kubernetes.io/name``)."""
    return f"eco2-{part}"


def python_container(args: list[str]) -> dict[str, Any]:
    """A container of the project image running ``python <args>`` with the shared settings."""
    return {
        "name": "app",
        "image": IMAGE,
        "command": ["python"],
        "args": args,
        "envFrom": [
            {"configMapRef": {"name": "eco2-config"}},
            {"secretRef": {"name": "eco2-secrets"}},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "env": [
            {"name": "ECO2_RUN_DIR", "value": RUN_DIR},
            {"name": "ECO2_TELEMETRY__METRICS", "value": "prometheus"},
            {"name": "ECO2_TELEMETRY__METRICS_PORT", "value": str(METRICS_PORT)},
            *(
                {
                    "name": f"ECO2_SERVICES__{other.upper()}_URL",
                    "value": f"http://{eco2_name(other)}",
                }
                for other in SERVICES
            ),
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
    }


def _wait_for_migrations() -> dict[str, Any]:
    """Init container: the Pod starts only once this image's migrations are applied."""
    container = python_container(["-m", MIGRATE_MODULE, "--wait"])
    container["name"] = "wait-for-migrations"
    del container["ports"]  # it serves nothing while it waits
    container["resources"] = {
        "requests": {"cpu": "10m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    }
    return container


def deployment(
    name: str, container: dict[str, Any], replicas: int, *, migrated: bool = True
) -> dict[str, Any]:
    """A Deployment of one container; with ``migrated`` its Pods first wait for the migrations
    (``kubectl apply`` has no order, so this is what orders them after the migration Job)."""
    selector = {"app.kubernetes.io/name": name}
    pod: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 30}
    if migrated:
        pod = {"initContainers": [_wait_for_migrations()], **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**LABELS, **selector}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**LABELS, **selector}, "annotations": SCRAPED},
                "spec": pod,
            },
        },
    }


def service(name: str, target: int | str = "http") -> dict[str, Any]:
    """The Service in front of Deployment ``name`` (port 80 to its ``http`` port)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }
