"""Built-in kinds: Deployment, Service, HorizontalPodAutoscaler, Job, CronJob, Role, RoleBinding
strictly by ``kubernetes-validate``; ConfigMap and Secret structurally, their ``ECO2_*`` keys by
:mod:`.settings`."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from devtools.manifests.common import DNS_NAME
from devtools.manifests.settings import settings_problems

KUBERNETES_KINDS = frozenset(
    {"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "CronJob", "Role", "RoleBinding"}
)
"""Built-in kinds checked against the Kubernetes OpenAPI schemas (``kubernetes-validate``)."""
KUBERNETES_VERSION = "1.33.0"


def kubernetes_problems(document: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(document)"
        return [f"{where}: {exc.message}"]
    return []


CORE_FIELDS: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}),
    "Secret": frozenset(
        {"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"}
    ),
}
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def config_problems(document: dict[str, Any], kind: str, combined: dict[str, str]) -> list[str]:
    """A ConfigMap's or Secret's fields, name and keys, and its ``ECO2_*`` settings one by one;
    those settings are added to ``combined`` (what one Pod sees, checked as a whole later)."""
    problems: list[str] = []
    if document.get("apiVersion") != "v1":
        problems.append(f"apiVersion {document.get('apiVersion')!r} is not 'v1'")
    unknown = sorted(set(document) - CORE_FIELDS[kind])
    if unknown:
        problems.append(f"unknown top-level field(s) {', '.join(unknown)}")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not DNS_NAME.match(name):
        problems.append(f"metadata.name {name!r} is not a DNS subdomain name")
    env: dict[str, str] = {}
    for field in ("data", "stringData"):
        if field not in document:
            continue
        values = document[field]
        if field == "stringData" and kind != "Secret":
            continue  # reported as an unknown field above
        if not isinstance(values, dict):
            problems.append(f"{field}: must be a mapping of strings, not {type(values).__name__}")
            continue
        for key, value in values.items():
            if not isinstance(key, str) or not _DATA_KEY.match(key):
                problems.append(f"{field}.{key}: invalid key (allowed: letters, digits, -._)")
            if not isinstance(value, str):
                problems.append(
                    f"{field}.{key}: value must be a string, not {type(value).__name__} "
                    "(quote it in YAML)"
                )
                continue
            if kind == "Secret" and field == "data":
                try:
                    value = base64.b64decode(value, validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    problems.append(f"{field}.{key}: not base64 (use stringData for plain text)")
                    continue
            env[str(key)] = value
    problems += settings_problems(env)
    combined.update(env)
    return problems
