"""The rendered Kubernetes manifests of the domains and the gateway: current, valid against the
Kubernetes schemas, and in step with the local launcher's services and routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster import k8s
from devtools import manifests
from runtime.domain_host import SERVICES
from runtime.routes import ROUTES

RENDERED = Path(__file__).resolve().parents[3] / "k8s" / "domains.yaml"


def _documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RENDERED.read_text(encoding="utf-8")) if d]


def test_committed_manifests_are_the_current_render() -> None:
    assert RENDERED.read_text(encoding="utf-8") == k8s.render(), (
        "run: python -m cluster.k8s > k8s/domains.yaml"
    )


def test_rendered_manifests_are_valid() -> None:
    assert manifests.validate(RENDERED) == []


def test_an_invalid_deployment_is_reported(tmp_path: Path) -> None:
    broken = k8s.domain_documents()[0]
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    problems = manifests.validate(path)
    assert problems
    assert "Deployment eco2-auth" in problems[0]


def test_every_service_runs_as_its_own_deployment_with_its_own_reactions() -> None:
    deployments = {d["metadata"]["name"]: d for d in _documents() if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"] for d in _documents() if d["kind"] == "Service"}
    for name in SERVICES:
        args = deployments[f"eco2-{name}"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:2] == ["-m", "runtime.domain_host"]
        assert args[args.index("--serve") + 1] == f"{name}=8000"
        assert args[args.index("--host") + 1] == "0.0.0.0"  # reachable through its Service
        assert f"eco2-{name}" in services
    assert (
        "scan"
        in deployments["eco2-scan-reactions"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_envoy_routes_match_the_local_gateway() -> None:
    routes = k8s.envoy_config()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][
        0
    ]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    matches = [r["match"] for r in routes]
    assert matches == [
        {"path_separated_prefix": r.prefix} if r.literal else {"safe_regex": {"regex": r.regex()}}
        for r in ROUTES
    ]
    public = {i for i, r in enumerate(routes) if "typed_per_filter_config" in r}
    assert public == {i for i, r in enumerate(ROUTES) if not r.sign_in}
