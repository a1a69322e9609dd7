"""Whether a Serve deployment's custom resources fit on one node of some worker group:
``ai_worker`` is a capacity, so a replica asking more than one node offers could never be
placed, however far the autoscaler scales."""

from __future__ import annotations

import json
from typing import Any

Offers = dict[str, dict[str, float]]
"""Custom resource → node group → units one node of that group offers."""


def advertised_resources(cluster: dict[str, Any]) -> Offers:
    """What one node of each group offers of each custom resource (``rayStartParams.resources``
    or the group's ``resources``)."""
    groups = [("head", cluster.get("headGroupSpec") or {})]
    groups += [(g.get("groupName", "?"), g) for g in cluster.get("workerGroupSpecs") or []]
    offers: Offers = {}
    for name, group in groups:
        resources = dict(group.get("resources") or {})
        raw = (group.get("rayStartParams") or {}).get("resources")
        if raw is not None:
            resources.update(parse_resources(raw))
        for resource, amount in resources.items():
            offers.setdefault(resource, {})[name] = _amount(amount)
    return offers


def _amount(value: Any) -> float:
    """A resource quantity as a number (KubeRay writes them as numbers or numeric strings)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def parse_resources(raw: str) -> dict[str, Any]:
    """KubeRay's ``'"{\\"res\\": 1}"'`` form (a JSON string of JSON) or plain JSON; {} if bad."""
    try:
        value: Any = json.loads(raw)
        if isinstance(value, str):
            value = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def deployment_problems(
    built: dict[str, dict[str, Any]], overrides: list[Any], offers: Offers
) -> list[str]:
    """Overrides name deployments of the built application; every deployment's custom resources
    (its override's ``ray_actor_options``, else the code's) fit on one node of some group."""
    options = dict(built)
    problems: list[str] = []
    for override in overrides:
        if not isinstance(override, dict):
            continue
        name = override.get("name")
        if name not in built:
            problems.append(
                f"deployment override {name!r} names no deployment of the application "
                f"(known: {', '.join(sorted(built))})"
            )
        elif "ray_actor_options" in override:
            options[name] = dict(override["ray_actor_options"] or {})
    for name, actor in options.items():
        for resource, ask in (actor.get("resources") or {}).items():
            problems += _placement_problems(name, resource, _amount(ask), offers)
    return problems


def _placement_problems(deployment: str, resource: str, ask: float, offers: Offers) -> list[str]:
    """A replica asking ``ask`` of ``resource`` must fit on one node of some group (Ray never
    splits a replica across nodes, and the autoscaler adds only nodes it could place it on)."""
    groups = offers.get(resource)
    if not groups:
        return [
            f"deployment {deployment!r} needs custom resource {resource!r} that no node group "
            "advertises (rayStartParams.resources): its replicas would never schedule"
        ]
    best_group, best = max(groups.items(), key=lambda item: item[1])
    if ask > best:
        return [
            f"deployment {deployment!r} asks {ask:g} {resource!r} per replica but one node offers "
            f"at most {best:g} (group {best_group!r}): its replicas can never be placed"
        ]
    return []
