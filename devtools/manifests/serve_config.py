"""A RayService's ``serveConfigV2``: a valid Serve config without unknown options, whose import
paths import and build (binding the graph starts and reaches nothing), whose ``args`` satisfy
the application's args model, and whose deployments fit the cluster (:mod:`.placement`)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ValidationError

from devtools.manifests.common import short
from devtools.manifests.placement import Offers, advertised_resources, deployment_problems

APP_ARGS_MODELS: dict[str, str] = {
    "pipelines.scan.app:build_app": "pipelines.scan.app:ScanAppArgs",
    "pipelines.chat.app:build_app": "pipelines.chat.app:ChatAppArgs",
}
"""Application builder → the pydantic model of its ``args`` (for builders typed ``dict``)."""


def serve_problems(document: dict[str, Any]) -> list[str]:
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
    offers = advertised_resources(spec.get("rayClusterConfig", {}))
    for index, app in enumerate(config.get("applications") or []):
        if isinstance(app, dict):
            where = f"spec.serveConfigV2.applications[{index}] ({app.get('name')})"
            problems += [f"{where}: {p}" for p in _application_problems(app, offers)]
    return problems


def _serve_schema_problems(config: dict[str, Any]) -> list[str]:
    # Pydantic models only: importing them neither starts nor connects to Ray.
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except Exception as exc:  # Ray's pydantic raises its own ValidationError
        return [f"spec.serveConfigV2: not a valid Serve config: {short(str(exc))}"]
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


def _application_problems(app: dict[str, Any], offers: Offers) -> list[str]:
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
    target = getattr(module, attr)
    problems = _args_problems(import_path, target, app.get("args"))
    if problems:
        return problems
    built, problem = _build(import_path, target, app.get("args"), str(app.get("name")))
    if problem is not None:
        return [problem]
    return _policy_problems(app.get("autoscaling_policy"), set(built)) + deployment_problems(
        built, app.get("deployments") or [], offers
    )


def _policy_problems(policy: Any, deployments: set[str]) -> list[str]:
    """An application-level autoscaling policy imports and constructs from its kwargs (Serve
    would only find out in the controller, after the deploy), and a
    :class:`serve.autoscaling.PipelineAutoscaler` feeds only deployments the application has."""
    if policy is None:
        return []
    from serve.autoscaling import PipelineAutoscaler

    path = policy.get("policy_function") if isinstance(policy, dict) else None
    if not isinstance(path, str):
        return ["autoscaling_policy.policy_function is missing"]
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        return [f"autoscaling_policy {path!r} does not import: {exc!r}"]
    kwargs = policy.get("policy_kwargs") or {}
    if not inspect.isclass(factory):
        return []
    try:
        built = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        return [f"autoscaling_policy {path!r} refuses its policy_kwargs: {exc}"]
    if not isinstance(built, PipelineAutoscaler):
        return []
    named = set(built.feeds) | {name for downs in built.feeds.values() for name in downs}
    unknown = sorted(named - deployments)
    return (
        [f"autoscaling_policy feeds name no deployment of the application: {', '.join(unknown)}"]
        if unknown
        else []
    )


def _build(
    import_path: str, target: Any, args: Any, name: str
) -> tuple[dict[str, Any], str | None]:
    """The application's deployments (name → ``ray_actor_options``) as Serve would build them
    from ``import_path`` and ``args``; building binds the graph, it starts and reaches nothing."""
    from ray.serve._private.build_app import build_app  # what `serve deploy` uses to build
    from ray.serve.deployment import Application

    try:
        app = target
        if callable(target) and not isinstance(target, Application):
            model = _args_model(import_path, target)
            typed = model is not None and _first_parameter_is(target, model)
            app = target(model.model_validate(args or {}) if typed and model else args or {})
        if not isinstance(app, Application):
            return {}, f"import_path {import_path!r} built {type(app).__name__}, not an Application"
        built = build_app(app, name=name)
    except Exception as exc:
        return {}, f"import_path {import_path!r} does not build: {short(repr(exc))}"
    return {d.name: dict(d.ray_actor_options or {}) for d in built.deployments}, None


def _first_parameter_is(target: Any, model: type[BaseModel]) -> bool:
    return _first_annotation(target) is model


def _first_annotation(target: Any) -> Any:
    """The annotation of a builder's first parameter (None: none, or no signature to read, as
    for a builtin)."""
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    return params[0].annotation if params else None


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
        hint = _first_annotation(target)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            return hint
    return None
