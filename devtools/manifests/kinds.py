"""Which checks each document of a manifest file gets, by its ``kind``, and the checks across the
documents of one file (the settings one Pod sees together, connectors and their KafkaConnect)."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]

from devtools.manifests.common import name_of
from devtools.manifests.core import (
    CORE_FIELDS,
    KUBERNETES_KINDS,
    config_problems,
    kubernetes_problems,
)
from devtools.manifests.entry_points import entry_point_problems
from devtools.manifests.kuberay import KUBERAY_CRDS, default_crd_dir, kuberay_problems
from devtools.manifests.settings import settings_problems
from devtools.manifests.strimzi import STRIMZI_REQUIRED, connect_cluster_problems, strimzi_problems


def validate(path: str | Path, crd_dir: str | Path | None = None) -> list[str]:
    """Every problem found in the YAML file at ``path``; empty when it is valid."""
    source = Path(path)
    crds = Path(crd_dir) if crd_dir is not None else default_crd_dir()
    try:
        documents = list(yaml.safe_load_all(source.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        return [f"{source}: cannot read YAML: {exc}"]
    problems: list[str] = []
    combined: dict[str, str] = {}
    """The ``ECO2_*`` settings of every ConfigMap and Secret: one pod sees them together."""
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        where = f"{source}: document {index}"
        if not isinstance(document, dict):
            problems.append(f"{where}: not a mapping but {type(document).__name__}")
            continue
        kind, name = document.get("kind"), name_of(document)
        label = f"{where} ({kind} {name})"
        if kind in KUBERAY_CRDS:
            problems += [f"{label}: {p}" for p in kuberay_problems(document, kind, crds)]
        elif kind in CORE_FIELDS:
            problems += [f"{label}: {p}" for p in config_problems(document, kind, combined)]
        elif kind in KUBERNETES_KINDS:
            problems += [f"{label}: {p}" for p in kubernetes_problems(document)]
        elif kind in STRIMZI_REQUIRED:
            problems += [f"{label}: {p}" for p in strimzi_problems(document, kind)]
        else:
            known = ", ".join(
                sorted([*KUBERAY_CRDS, *CORE_FIELDS, *KUBERNETES_KINDS, *STRIMZI_REQUIRED])
            )
            problems.append(f"{where}: unknown kind {kind!r}; this validator knows {known}")
            continue
        problems += [f"{label}: {p}" for p in entry_point_problems(document)]
    problems += [
        f"{source}: ConfigMaps and Secrets together: {p}"
        for p in settings_problems(combined, whole=True)
    ]
    problems += [f"{source}: {p}" for p in connect_cluster_problems(documents)]
    return problems
