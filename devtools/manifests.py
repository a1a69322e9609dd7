"""Offline validation of the project's Kubernetes manifests (``ray-cluster.yaml`` and friends).

:func:`validate` loads every YAML document of a file and returns a list of problems, empty when
the file is fine:

- KubeRay objects (``RayService``, ``RayCluster``, ``RayJob``, ``ray.io/v1``) are validated
  against the ``v1`` ``openAPIV3Schema`` of the matching CRD (the KubeRay CRDs shipped in the
  shared folder, see :func:`default_crd_dir`). ``x-kubernetes-*`` extensions are dropped; objects
  that declare their properties are closed, as the API server's strict field validation
  (``kubectl``'s default) rejects unknown fields instead of pruning them silently.
- ``ConfigMap`` and ``Secret`` get a structural check; their ``ECO2_*`` keys must name settings
  that exist and their values must parse (:mod:`eco2.settings`).
- A RayService's ``serveConfigV2`` must be a valid Serve config whose import paths import
  (importing ``pipelines.scan.app`` does not start or connect to Ray), whose ``args`` satisfy the
  application's args model, whose deployment overrides name deployments that exist, and whose
  custom resources are advertised by some node group (else replicas never schedule).

Usage: ``python -m devtools.manifests ray-cluster.yaml`` (exit status 1 when there are problems).
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import inspect
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from eco2.settings import Settings

CRD_DIR_ENV = "ECO2_KUBERAY_CRDS"
"""Environment variable naming the folder of the KubeRay CRDs (overrides the default)."""

KUBERAY_API_VERSION = "ray.io/v1"
KUBERAY_CRDS: dict[str, str] = {
    "RayService": "ray.io_rayservices.yaml",
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
}
CORE_FIELDS: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}),
    "Secret": frozenset(
        {"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"}
    ),
}
APP_ARGS_MODELS: dict[str, str] = {
    "pipelines.scan.app:build_app": "pipelines.scan.app:ScanAppArgs",
    "pipelines.chat.app:build_app": "pipelines.chat.app:ChatAppArgs",
}
"""Application builder → the pydantic model of its ``args`` (for builders typed ``dict``)."""

SETTINGS_PREFIX = "ECO2_"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_MESSAGE_LIMIT = 300


def default_crd_dir() -> Path:
    """``$ECO2_KUBERAY_CRDS``, else ``shared/kuberay-crds`` beside the repository."""
    configured = os.environ.get(CRD_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "kuberay-crds"


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
        kind, name = document.get("kind"), _name_of(document)
        label = f"{where} ({kind} {name})"
        if kind in KUBERAY_CRDS:
            problems += [f"{label}: {p}" for p in _kuberay_problems(document, kind, crds)]
        elif kind in CORE_FIELDS:
            problems += [f"{label}: {p}" for p in _core_problems(document, kind, combined)]
        elif kind in KUBERNETES_KINDS:
            problems += [f"{label}: {p}" for p in _kubernetes_problems(document)]
        else:
            known = ", ".join([*KUBERAY_CRDS, *CORE_FIELDS])
            problems.append(f"{where}: unknown kind {kind!r}; this validator knows {known}")
    problems += [
        f"{source}: ConfigMaps and Secrets together: {p}"
        for p in settings_problems(combined, whole=True)
    ]
    return problems


KUBERNETES_KINDS = frozenset({"Deployment", "Service"})
"""Built-in kinds checked against the Kubernetes OpenAPI schemas (``kubernetes-validate``)."""
KUBERNETES_VERSION = "1.33.0"


def _kubernetes_problems(document: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(document)"
        return [f"{where}: {exc.message}"]
    return []


def _name_of(document: dict[str, Any]) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else "<unnamed>"


def _short(message: str) -> str:
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 3] + "..."


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


# --- KubeRay objects --------------------------------------------------------------------------


def _kuberay_problems(document: dict[str, Any], kind: str, crds: Path) -> list[str]:
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
        f"{_json_path(error.absolute_path)}: {_short(error.message)}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if kind == "RayService" and not problems:
        problems += _serve_problems(document)
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


# --- serveConfigV2 ----------------------------------------------------------------------------


def _serve_problems(document: dict[str, Any]) -> list[str]:
    spec = document["spec"]
    text = spec.get("serveConfigV2")
    if text is None:
        return []
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"spec.serveConfigV2: not YAML: {exc}"]
    if not isinstance(config, dict):
        return ["spec.serveConfigV2: not a mapping"]
    problems = _serve_schema_problems(config)
    advertised = _advertised_resources(spec.get("rayClusterConfig", {}))
    for index, app in enumerate(config.get("applications") or []):
        if isinstance(app, dict):
            where = f"spec.serveConfigV2.applications[{index}] ({app.get('name')})"
            problems += [f"{where}: {p}" for p in _application_problems(app, advertised)]
    return problems


def _serve_schema_problems(config: dict[str, Any]) -> list[str]:
    # Pydantic models only: importing them neither starts nor connects to Ray.
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except Exception as exc:  # Ray's pydantic raises its own ValidationError
        return [f"spec.serveConfigV2: not a valid Serve config: {_short(str(exc))}"]
    # Serve's schemas ignore unknown keys, so a misspelt option would silently do nothing.
    where = "spec.serveConfigV2"
    problems = _unknown_keys(where, config, ServeDeploySchema)
    for i, app in enumerate(config.get("applications") or []):
        problems += _unknown_keys(f"{where}.applications[{i}]", app, ServeApplicationSchema)
        for j, deployment in enumerate(app.get("deployments") or []):
            at = f"{where}.applications[{i}].deployments[{j}]"
            problems += _unknown_keys(at, deployment, DeploymentSchema)
    return problems


def _unknown_keys(where: str, value: Any, model: type[BaseModel]) -> list[str]:
    if not isinstance(value, dict):
        return []
    unknown = sorted(str(k) for k in value if k not in model.model_fields)
    return [f"{where}: unknown option(s) {', '.join(unknown)}"] if unknown else []


def _advertised_resources(cluster: dict[str, Any]) -> dict[str, set[str]]:
    """Custom resource → the node groups that advertise it (``rayStartParams`` or ``resources``)."""
    groups = [("head", cluster.get("headGroupSpec") or {})]
    groups += [(g.get("groupName", "?"), g) for g in cluster.get("workerGroupSpecs") or []]
    advertised: dict[str, set[str]] = {}
    for name, group in groups:
        resources = dict(group.get("resources") or {})
        raw = (group.get("rayStartParams") or {}).get("resources")
        if raw is not None:
            resources.update(_parse_resources(raw))
        for resource in resources:
            advertised.setdefault(resource, set()).add(name)
    return advertised


def _parse_resources(raw: str) -> dict[str, Any]:
    """KubeRay's ``'"{\\"res\\": 1}"'`` form (a JSON string of JSON) or plain JSON; {} if bad."""
    try:
        value: Any = json.loads(raw)
        if isinstance(value, str):
            value = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _application_problems(app: dict[str, Any], advertised: dict[str, set[str]]) -> list[str]:
    import_path = app.get("import_path")
    if not isinstance(import_path, str):
        return ["import_path is missing"]
    module_name, sep, attr = import_path.partition(":")
    if not sep:
        module_name, _, attr = import_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return [f"import_path {import_path!r}: cannot import {module_name!r}: {exc!r}"]
    if not hasattr(module, attr):
        return [f"import_path {import_path!r}: module {module_name!r} has no {attr!r}"]
    problems = _args_problems(import_path, getattr(module, attr), app.get("args"))
    problems += _deployment_problems(module, app.get("deployments") or [], advertised)
    return problems


def _args_problems(import_path: str, target: Any, args: Any) -> list[str]:
    model = _args_model(import_path, target)
    if args is not None and not callable(target):
        return [f"args given but {import_path!r} is an application, not a builder"]
    if model is None:
        return []
    try:
        model.model_validate(args or {})
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return [f"args rejected by {model.__name__}: {details}"]
    return []


def _args_model(import_path: str, target: Any) -> type[BaseModel] | None:
    if import_path in APP_ARGS_MODELS:
        module_name, _, name = APP_ARGS_MODELS[import_path].partition(":")
        model: type[BaseModel] = getattr(importlib.import_module(module_name), name)
        return model
    if callable(target):  # a builder typed with a pydantic model, as Serve itself supports
        with_params = list(inspect.signature(target).parameters.values())
        hint = with_params[0].annotation if with_params else None
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            return hint
    return None


def _deployment_problems(
    module: Any, overrides: list[Any], advertised: dict[str, set[str]]
) -> list[str]:
    from ray.serve.deployment import Deployment

    known = {d.name for d in vars(module).values() if isinstance(d, Deployment)}
    problems: list[str] = []
    for override in overrides:
        if not isinstance(override, dict):
            continue
        name = override.get("name")
        if known and name not in known:
            problems.append(
                f"deployment override {name!r} names no deployment of {module.__name__} "
                f"(known: {', '.join(sorted(known))})"
            )
        actor = override.get("ray_actor_options") or {}
        for resource in actor.get("resources") or {}:
            if resource not in advertised:
                problems.append(
                    f"deployment {name!r} needs custom resource {resource!r} that no node group "
                    "advertises (rayStartParams.resources): its replicas would never schedule"
                )
    return problems


# --- ConfigMap / Secret -----------------------------------------------------------------------


def _core_problems(document: dict[str, Any], kind: str, combined: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if document.get("apiVersion") != "v1":
        problems.append(f"apiVersion {document.get('apiVersion')!r} is not 'v1'")
    unknown = sorted(set(document) - CORE_FIELDS[kind])
    if unknown:
        problems.append(f"unknown top-level field(s) {', '.join(unknown)}")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not _NAME.match(name):
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


class _EnvFileOnly(Settings):
    """The settings read from a dotenv file only (never from this process's environment)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, dotenv_settings)


def settings_problems(env: dict[str, str], *, whole: bool = False) -> list[str]:
    """Problems of the ``ECO2_*`` entries of ``env``: unknown names and values that do not parse.

    Rules across fields (e.g. production must not keep development secrets) are checked only
    with ``whole``, on everything a pod sees, since one document may hold half of them.
    """
    ours = {k: v for k, v in env.items() if k.upper().startswith(SETTINGS_PREFIX)}
    problems = (
        []
        if whole
        else [f"{key}: no such setting" for key in sorted(ours) if not _known_setting(key)]
    )
    if not ours:
        return problems
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "manifest.env"
        env_file.write_text(
            "".join(f"{k}={json.dumps(v, ensure_ascii=False)}\n" for k, v in ours.items())
        )
        try:
            _EnvFileOnly(_env_file=env_file)
        except ValidationError as exc:
            for err in exc.errors():
                if not err["loc"]:
                    if whole:
                        problems.append(str(err["msg"]).removeprefix("Value error, "))
                    continue
                if not whole:
                    key = SETTINGS_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
                    problems.append(f"{key}: {err['msg']}")
    return problems


def _known_setting(key: str) -> bool:
    """Whether ``ECO2_A__B`` names a field (``Settings.a.b``); pydantic-settings ignores typos."""
    model: type[BaseModel] | None = Settings
    for part in key[len(SETTINGS_PREFIX) :].lower().split("__"):
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return False
        annotation = field.annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return True


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Validate the files named in ``argv`` (default ``ray-cluster.yaml``); 1 if any problem."""
    paths = (sys.argv[1:] if argv is None else argv) or ["ray-cluster.yaml"]
    problems = [problem for path in paths for problem in validate(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
