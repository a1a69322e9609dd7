"""The Job that creates the domain databases and applies their migrations
(``python -m eco2.migrations``); the Pods that open a database wait for it in an init container
(:func:`cluster.k8s.objects.deployment`)."""

from __future__ import annotations

import re
from typing import Any

from cluster.k8s.objects import IMAGE, LABELS, MIGRATE_MODULE, eco2_name, python_container


def migration_job_name() -> str:
    """``eco2-migrate-<image tag>``: a Job's Pod template is immutable, so each release gets its
    own Job (re-applying the same release leaves the finished Job alone)."""
    tag = IMAGE.rpartition(":")[2]
    return eco2_name(f"migrate-{re.sub(r'[^a-z0-9]+', '-', tag.lower()).strip('-')}")


def migration_documents() -> list[dict[str, Any]]:
    """The migration Job (idempotent, under an advisory lock, so a retried or repeated run is
    harmless); finished Jobs are removed after 7 days."""
    container = python_container(["-m", MIGRATE_MODULE])
    container["name"] = "migrate"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": migration_job_name(), "labels": LABELS},
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": {**LABELS, "app.kubernetes.io/name": "eco2-migrate"}},
                "spec": {"restartPolicy": "OnFailure", "containers": [container]},
            },
        },
    }
    return [job]
