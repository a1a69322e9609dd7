"""KubeRay objects (``RayService``, ``RayCluster``, ``RayJob``, ``ray.io/v1``) against the ``v1``
``openAPIV3Schema`` of the matching CRD, closed as the API server's strict field validation is;
a valid RayService's ``serveConfigV2`` is then checked by :mod:`.serve_config`."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import yaml  # type: ignore[import-untyped, unused-ignore]

from devtools.manifests.common import short
from devtools.manifests.serve_config import serve_problems

CRD_DIR_ENV = "ECO2_KUBERAY_CRDS"
"""Environment variable naming the folder of the KubeRay CRDs (overrides the default)."""

KUBERAY_API_VERSION = "ray.io/v1"
KUBERAY_CRDS: dict[str, str] = {
    "RayService": "ray.io_rayservices.yaml",
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
}


def default_crd_dir() -> Path:
    """``$ECO2_KUBERAY_CRDS``, else ``shared/kuberay-crds`` beside the repository."""
    configured = os.environ.get(CRD_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "kuberay-crds"


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


def kuberay_problems(document: dict[str, Any], kind: str, crds: Path) -> list[str]:
    if document.get("apiVersion") != KUBERAY_API_VERSION:
        return [
            f"apiVersion {document.get('apiVersion')!r} is not {KUBERAY_API_VERSION!r} "
            "(only the v1 schema is validated)"
        ]
    try:
        schema = crd_schema(crds / KUBERAY_CRDS[kind])
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return [f"cannot load the {kind} CRD schema: {exc}"]
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{_json_path(error.absolute_path)}: {short(error.message)}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if kind == "RayService" and not problems:
        problems += serve_problems(document)
    return problems


@functools.lru_cache(maxsize=8)
def crd_schema(crd_file: Path) -> dict[str, Any]:
    """``spec.versions[name == v1].schema.openAPIV3Schema`` of ``crd_file``, ready to validate."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~1 MB each
    crd = yaml.load(crd_file.read_text(encoding="utf-8"), Loader=loader)
    for version in crd.get("spec", {}).get("versions", []):
        if version.get("name") == "v1":
            schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
            return schema
    raise ValueError(f"{crd_file} has no v1 version")


def _strict(node: Any) -> Any:
    """Drop ``x-kubernetes-*`` keys; close objects that list their properties.

    An object marked ``x-kubernetes-preserve-unknown-fields`` or with ``additionalProperties``
    stays open, as do objects without ``properties`` (``metadata``, free-form maps).
    """
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {k: _strict(v) for k, v in node.items() if not str(k).startswith("x-kubernetes-")}
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not node.get("x-kubernetes-embedded-resource")
    ):
        result["additionalProperties"] = False
    return result
