from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.topology import RAY_HEAD_ENV
from devtools import manifests
from devtools.manifests.placement import advertised_resources, parse_resources
from tests.crds import needs_kuberay_crds

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "ray-cluster.yaml"
CRD_DIR = manifests.default_crd_dir()

pytestmark = needs_kuberay_crds

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
    offers = advertised_resources(cluster)["ai_worker"]
    assert "head" not in offers  # the head does no AI work
    assert offers["ai-worker"] >= 1


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
    _one(problems, "document 4", "unknown kind 'Pod'", "HorizontalPodAutoscaler", "KafkaConnect")
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


def test_an_autoscaling_policy_that_cannot_run_is_named(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        scan, chat = config["applications"]
        scan["autoscaling_policy"]["policy_kwargs"]["feeds"] = {"VisionStage": ["AnswerStag"]}
        chat["autoscaling_policy"]["policy_kwargs"]["lead_s"] = -1

    problems = _broken(tmp_path, _change_serve(change))
    _one(problems, "(scan)", "feeds name no deployment", "AnswerStag")
    _one(problems, "(chat)", "refuses its policy_kwargs", "lead_s")

    def unknown(config: dict[str, Any]) -> None:
        config["applications"][0]["autoscaling_policy"]["policy_function"] = "serve.nope:Policy"

    _one(_broken(tmp_path, _change_serve(unknown)), "'serve.nope:Policy' does not import")


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
    assert parse_resources('"{\\"ai_worker\\": 1000}"') == {"ai_worker": 1000}
    assert parse_resources('{"ai_worker": 2}') == {"ai_worker": 2}
    assert parse_resources("ai_worker=2") == {}


# --- ai_worker as capacity --------------------------------------------------------------------


def _ai_group(docs: Docs) -> dict[str, Any]:
    groups = docs[0]["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    group: dict[str, Any] = next(g for g in groups if g["groupName"] == "ai-worker")
    return group


def test_a_replica_larger_than_one_ai_node_can_never_be_placed(tmp_path: Path) -> None:
    def change(docs: Docs) -> None:
        _ai_group(docs)["rayStartParams"]["resources"] = '"{\\"ai_worker\\": 0.5}"'

    problem = _one(_broken(tmp_path, change), "can never be placed")
    assert "asks 1 'ai_worker' per replica but one node offers at most 0.5" in problem
    assert "(group 'ai-worker')" in problem


def test_the_largest_ask_is_compared_with_the_largest_offer(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["applications"][0]["deployments"][2]["ray_actor_options"]["resources"] = {
            "ai_worker": 100_000
        }

    problem = _one(_broken(tmp_path, _change_serve(change)), "'AnswerStage'", "never be placed")
    assert "asks 100000 'ai_worker'" in problem


def test_deployments_without_an_override_are_checked_with_the_code_options(
    tmp_path: Path,
) -> None:
    """The code asks for ai_worker (serve.stages.STAGE_OPTIONS) even where no override says so."""

    def change(docs: Docs) -> None:
        config = _serve_config(docs)
        for app in config["applications"]:
            app["deployments"] = [d for d in app["deployments"] if d["name"] != "VisionStage"]
        docs[0]["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)
        del _ai_group(docs)["rayStartParams"]["resources"]

    _one(_broken(tmp_path, change), "'VisionStage'", "no node group advertises")


def test_an_import_path_must_build_an_application(tmp_path: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["applications"][0]["import_path"] = "json:loads"
        del config["applications"][0]["deployments"]
        config["applications"][1]["import_path"] = "builtins:dict"
        del config["applications"][1]["deployments"]

    problems = _broken(tmp_path, _change_serve(change))
    _one(problems, "applications[0]", "'json:loads' does not build")
    _one(problems, "applications[1]", "built dict, not an Application")


# --- RayJob, CronJob, HPA, Job -----------------------------------------------------------------

IMAGE = "ghcr.io/eco2/eco2-on-ray:0.1.0"


def _ray_job(entrypoint: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "rescore"},
        "spec": {"entrypoint": entrypoint, "clusterSelector": {"ray.io/cluster": "eco2"}},
    }


def _cron_job(command: list[str]) -> dict[str, Any]:
    container = {"name": "submit", "image": IMAGE, "command": command}
    pod = {"restartPolicy": "OnFailure", "containers": [container]}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "rescore-nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}},
    }


def _validate(tmp_path: Path, *docs: dict[str, Any]) -> list[str]:
    path = tmp_path / "docs.yaml"
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return manifests.validate(path)


def test_ray_job_and_cron_job_pass_when_their_entry_points_import(tmp_path: Path) -> None:
    job = _ray_job("python -m runtime.domain_host --help")
    cron = _cron_job(["sh", "-c", "ray job submit -- python -m cdc.relay --help"])
    assert _validate(tmp_path, job, cron) == []


def test_ray_job_entry_point_and_schema(tmp_path: Path) -> None:
    problems = _validate(tmp_path, _ray_job("python -m pipelines.nope --dry-run"), _ray_job(5))
    _one(problems, "RayJob rescore", "spec.entrypoint: python -m pipelines.nope", "cannot import")
    _one(problems, "document 2", "entrypoint", "5 is not of type 'string'")


def test_cron_job_schema_and_entry_point(tmp_path: Path) -> None:
    bad_schedule = _cron_job(["python", "-m", "runtime.domain_host"])
    bad_schedule["spec"]["schedule"] = 5
    problems = _validate(tmp_path, bad_schedule, _cron_job(["python", "-m", "cdc"]))
    _one(problems, "document 1", "CronJob rescore-nightly")
    _one(problems, "document 2", "a package without __main__")


def test_autoscaler_and_job_schemas(tmp_path: Path) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "eco2-auth"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "minReplicas": "two",
            "maxReplicas": 4,
        },
    }
    job = _cron_job(["python", "-m", "runtime.domain_host"])["spec"]["jobTemplate"]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"}, **job}
    job["spec"]["backoffLimit"] = "often"
    problems = _validate(tmp_path, hpa, job)
    _one(problems, "HorizontalPodAutoscaler eco2-auth", "minReplicas")
    _one(problems, "Job m", "backoffLimit")


def test_python_module_forms() -> None:
    def container(command: list[str], args: list[str] | None = None) -> dict[str, Any]:
        return {"name": "c", "image": IMAGE, "command": command, "args": args or []}

    assert manifests.python_modules(container(["python"], ["-m", "a.b", "--x"])) == [
        ("<root>", "a.b")
    ]
    assert manifests.python_modules(container(["/usr/bin/python3.11", "-m", "c"])) == [
        ("<root>", "c")
    ]
    assert manifests.python_modules(container(["sh", "-c", "exec python -m d.e"])) == [
        ("<root>", "d.e")
    ]
    assert manifests.python_modules(container(["ray", "start"])) == []
    assert manifests.python_modules({"spec": {"entrypoint": "python -m f"}}) == [
        ("spec.entrypoint", "f")
    ]


# --- Strimzi ------------------------------------------------------------------------------------


def _debezium() -> Docs:
    from cluster.k8s.debezium import debezium_documents

    return debezium_documents()


def _strimzi(docs: Docs, kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def test_the_debezium_manifest_is_valid(tmp_path: Path) -> None:
    assert _validate(tmp_path, *_debezium()) == []


def test_strimzi_required_fields_and_references(tmp_path: Path) -> None:
    docs = _debezium()
    connect, connector = _strimzi(docs, "KafkaConnect"), _strimzi(docs, "KafkaConnector")
    del connect["spec"]["bootstrapServers"]
    del connect["metadata"]["annotations"]
    del connector["spec"]["config"]["transforms.outbox.type"]
    connector["spec"]["config"]["tasks"] = {"max": 1}
    problems = _validate(tmp_path, *docs)
    _one(problems, "KafkaConnect eco2-connect", "spec.bootstrapServers: required")
    _one(problems, "would be ignored")
    _one(problems, "transform 'outbox' has no .type")
    _one(problems, "spec.config.tasks: must be a string")


def test_strimzi_connector_needs_its_cluster_and_version(tmp_path: Path) -> None:
    docs = _debezium()
    connector = _strimzi(docs, "KafkaConnector")
    del connector["metadata"]["labels"]["strimzi.io/cluster"]
    del connector["spec"]["class"]
    connector["apiVersion"] = "kafka.strimzi.io/v1alpha1"
    problems = _validate(tmp_path, *docs)
    _one(problems, "labels.strimzi.io/cluster: required")
    _one(problems, "spec.class: required")
    _one(problems, "'kafka.strimzi.io/v1alpha1' is not")
