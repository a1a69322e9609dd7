from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.topology import RAY_HEAD_ENV
from devtools import manifests

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "ray-cluster.yaml"
CRD_DIR = manifests.default_crd_dir()

pytestmark = pytest.mark.skipif(
    not all((CRD_DIR / name).is_file() for name in manifests.KUBERAY_CRDS.values()),
    reason=f"KubeRay CRDs not found in {CRD_DIR} (set {manifests.CRD_DIR_ENV} to their folder)",
)

Docs = list[dict[str, Any]]


def _docs() -> Docs:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]


def _serve_config(docs: Docs) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(docs[0]["spec"]["serveConfigV2"])
    return config


def _broken(tmp_path: Path, change: Callable[[Docs], None]) -> list[str]:
    docs = _docs()
    change(docs)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return manifests.validate(path)


def _change_serve(change: Callable[[dict[str, Any]], None]) -> Callable[[Docs], None]:
    def apply(docs: Docs) -> None:
        config = _serve_config(docs)
        change(config)
        docs[0]["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)

    return apply


def _one(problems: list[str], *fragments: str) -> str:
    hits = [p for p in problems if all(f in p for f in fragments)]
    assert hits, f"no problem mentions {fragments}: {problems}"
    return hits[0]


def test_shipped_manifest_is_valid() -> None:
    assert manifests.validate(MANIFEST) == []
    assert manifests.main([str(MANIFEST)]) == 0


def test_shipped_manifest_holds_the_expected_objects() -> None:
    kinds = [(d["kind"], d["metadata"]["name"]) for d in _docs()]
    assert kinds == [
        ("RayService", "eco2"),
        ("ConfigMap", "eco2-config"),
        ("Secret", "eco2-secrets"),
    ]
    cluster = _docs()[0]["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    ai = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == "ai-worker")
    assert manifests._parse_resources(ai["rayStartParams"]["resources"]) == {"ai_worker": 1000}


def test_every_container_gets_the_config_the_secret_and_the_ray_env() -> None:
    cluster = _docs()[0]["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
            assert refs == {"configMapRef": "eco2-config", "secretRef": "eco2-secrets"}
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env.items() >= RAY_HEAD_ENV.items()
            assert container["image"] == "ghcr.io/eco2/eco2-on-ray:0.1.0"
            assert {"requests", "limits"} <= set(container["resources"])


def test_deployment_overrides_match_the_code() -> None:
    """serveConfigV2 overrides win over the code: keep them equal so the two never drift."""
    from pipelines.scan.app import ScanAppArgs, ScanIngress
    from serve.stages import STAGE_OPTIONS

    app = _serve_config(_docs())["applications"][0]
    overrides = {d["name"]: d for d in app["deployments"]}
    assert set(overrides) == {"ScanIngress", "VisionStage", "AnswerStage"}
    for stage in ("VisionStage", "AnswerStage"):
        assert overrides[stage] == {"name": stage, **STAGE_OPTIONS}
    ingress, args = overrides["ScanIngress"], ScanAppArgs.model_validate(app["args"])
    assert ingress["num_replicas"] == args.ingress_replicas
    assert ingress["max_ongoing_requests"] == args.ingress_max_ongoing_requests
    deployment: Any = ScanIngress  # a serve.Deployment at run time (the decorator is untyped)
    assert ingress["max_queued_requests"] == deployment.max_queued_requests
    assert ingress["ray_actor_options"] == deployment.ray_actor_options


def test_wrong_field_type_is_named(tmp_path: Path) -> None:
    def change(docs: Docs) -> None:
        docs[0]["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"] = "two"

    problem = _one(_broken(tmp_path, change), "workerGroupSpecs[0].minReplicas")
    assert "'two' is not of type 'integer'" in problem
    assert "RayService eco2" in problem


def test_misspelt_field_is_refused_not_pruned(tmp_path: Path) -> None:
    def change(docs: Docs) -> None:
        docs[0]["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["minReplica"] = 1

    _one(_broken(tmp_path, change), "workerGroupSpecs[1]", "'minReplica' was unexpected")


def test_unknown_kind_and_wrong_api_version(tmp_path: Path) -> None:
    def change(docs: Docs) -> None:
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
        docs[0]["apiVersion"] = "ray.io/v1alpha1"

    problems = _broken(tmp_path, change)
    _one(problems, "document 4", "unknown kind 'Pod'")
    _one(problems, "apiVersion 'ray.io/v1alpha1'")


def test_bad_import_path(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["applications"][0]["import_path"] = "pipelines.scan.nope:build_app"

    problem = _one(_broken(tmp_path, _change_serve(change)), "import_path")
    assert "cannot import 'pipelines.scan.nope'" in problem


def test_missing_builder_in_an_importable_module(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["applications"][0]["import_path"] = "pipelines.scan.app:build_ap"

    _one(_broken(tmp_path, _change_serve(change)), "has no 'build_ap'")


def test_args_rejected_by_the_args_model(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["applications"][0]["args"] = {"ingress_replicas": "many"}

    _one(_broken(tmp_path, _change_serve(change)), "ScanAppArgs", "ingress_replicas")


def test_serve_config_problems(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        deployments = config["applications"][0]["deployments"]
        deployments[0]["max_ongoing_request"] = 10
        deployments[1]["name"] = "VisionStag"
        deployments[2]["ray_actor_options"]["resources"] = {"gpu_worker": 1}

    problems = _broken(tmp_path, _change_serve(change))
    _one(problems, "deployments[0]", "unknown option(s) max_ongoing_request")
    _one(problems, "'VisionStag' names no deployment")
    _one(problems, "'gpu_worker'", "never schedule")


def test_invalid_serve_config_is_reported(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["applications"][0]["deployments"][1]["max_ongoing_requests"] = -1

    _one(_broken(tmp_path, _change_serve(change)), "not a valid Serve config")


def test_config_map_and_secret_checks(tmp_path: Path) -> None:
    def change(docs: Docs) -> None:
        docs[1]["data"]["ECO2_DB__POOL_MAX"] = 5
        docs[1]["data"]["ECO2_MODEL_BASE_URL"] = "https://example.com/v1"
        docs[1]["data"]["ECO2_TELEMETRY__TRACES"] = "jaeger"
        docs[2]["data"] = {"ECO2_MODEL__API_KEY": "not base64!"}
        docs[2]["metadata"]["name"] = "Bad_Name"

    problems = _broken(tmp_path, change)
    _one(problems, "data.ECO2_DB__POOL_MAX", "must be a string")
    _one(problems, "ECO2_MODEL_BASE_URL: no such setting")
    _one(problems, "ECO2_TELEMETRY__TRACES")
    _one(problems, "Secret", "not base64")
    _one(problems, "metadata.name 'Bad_Name'")
    assert manifests.main([str(tmp_path / "broken.yaml")]) == 1


def test_unreadable_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: [unclosed\n")
    _one(manifests.validate(path), "cannot read YAML")


def test_resources_start_param_forms() -> None:
    assert manifests._parse_resources('"{\\"ai_worker\\": 1000}"') == {"ai_worker": 1000}
    assert manifests._parse_resources('{"ai_worker": 2}') == {"ai_worker": 2}
    assert manifests._parse_resources("ai_worker=2") == {}
