"""Strimzi ``KafkaConnect`` / ``KafkaConnector``: no CRD schema here, so a structural check only
(required fields, config value types, every transform has a type, each connector names a
KafkaConnect of the same file that manages connector resources)."""

from __future__ import annotations

from typing import Any

from devtools.manifests.common import DNS_NAME, name_of

STRIMZI_API_VERSION = "kafka.strimzi.io/v1beta2"
STRIMZI_REQUIRED: dict[str, tuple[str, ...]] = {
    "KafkaConnect": ("bootstrapServers",),
    "KafkaConnector": ("class", "config"),
}
"""Strimzi kinds → the ``spec`` fields the operator requires. There is no Strimzi CRD schema
here, so these objects get a structural check only (fields present, types, references)."""
CONNECT_CLUSTER_LABEL = "strimzi.io/cluster"
USE_CONNECTOR_RESOURCES = "strimzi.io/use-connector-resources"


def strimzi_problems(document: dict[str, Any], kind: str) -> list[str]:
    problems: list[str] = []
    if document.get("apiVersion") != STRIMZI_API_VERSION:
        problems.append(f"apiVersion {document.get('apiVersion')!r} is not {STRIMZI_API_VERSION!r}")
    name = name_of(document)
    if not DNS_NAME.match(name):
        problems.append(f"metadata.name {name!r} is not a DNS subdomain name")
    spec = document.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec: missing or not a mapping"]
    problems += [f"spec.{f}: required" for f in STRIMZI_REQUIRED[kind] if f not in spec]
    if kind == "KafkaConnector":
        problems += _connector_problems(document, spec)
    return problems


def _connector_problems(document: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    labels = (document.get("metadata") or {}).get("labels") or {}
    if not labels.get(CONNECT_CLUSTER_LABEL):
        problems.append(f"metadata.labels.{CONNECT_CLUSTER_LABEL}: required (its KafkaConnect)")
    config = spec.get("config")
    if not isinstance(config, dict):
        return [*problems, "spec.config: must be a mapping"]
    problems += [
        f"spec.config.{key}: must be a string, number or boolean"
        for key, value in config.items()
        if not isinstance(value, str | int | float | bool)
    ]
    for transform in str(config.get("transforms", "")).split(","):
        if transform.strip() and f"transforms.{transform.strip()}.type" not in config:
            problems.append(f"spec.config: transform {transform.strip()!r} has no .type")
    return problems


def connect_cluster_problems(documents: list[Any]) -> list[str]:
    """Each KafkaConnector names a KafkaConnect of the same file that manages connectors from
    resources (else the operator silently ignores the connector)."""
    ours = [d for d in documents if isinstance(d, dict)]
    managing = {
        name_of(d)
        for d in ours
        if d.get("kind") == "KafkaConnect"
        and str(((d.get("metadata") or {}).get("annotations") or {}).get(USE_CONNECTOR_RESOURCES))
        == "true"
    }
    problems = []
    for d in ours:
        if d.get("kind") != "KafkaConnector":
            continue
        cluster = ((d.get("metadata") or {}).get("labels") or {}).get(CONNECT_CLUSTER_LABEL)
        if cluster and cluster not in managing:
            problems.append(
                f"KafkaConnector {name_of(d)}: KafkaConnect {cluster!r} is not in this file "
                f'with annotation {USE_CONNECTOR_RESOURCES}: "true"; the connector would be ignored'
            )
    return problems
