"""The rendered Kubernetes manifests: current, valid against the Kubernetes schemas, and in step
with the local launcher's services, consumers, relay and routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from cdc.outbox import (
    EVENT_COLUMNS,
    H_ID,
    H_TRACEPARENT,
    RowLayout,
    envelope_from_message,
    record_from_values,
    topic_for,
)
from cdc.relay.slots import slot_name
from cluster import k8s
from cluster.k8s import consumers, debezium, gateway, migration, objects, services
from cluster.k8s.cli import main
from cluster.topology import EVENT_REGISTRIES
from devtools import manifests
from eco2 import migrations
from eco2.migrations import migrations_for
from eco2.settings import DOMAIN_DATABASES, Settings
from runtime.domain_host import OTHER_CONSUMERS, SERVICES, consumer_specs
from runtime.routes import ROUTES
from tests.crds import needs_kuberay_crds

K8S = Path(__file__).resolve().parents[3] / "k8s"
RENDERED = K8S / "domains.yaml"
Doc = dict[str, Any]


def _documents(file: str = "domains.yaml") -> list[Doc]:
    return [d for d in yaml.safe_load_all((K8S / file).read_text(encoding="utf-8")) if d]


def _by_kind(kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def _pod(deployment: Doc) -> Doc:
    pod: Doc = deployment["spec"]["template"]["spec"]
    return pod


def _args(deployment: Doc) -> list[str]:
    args: list[str] = _pod(deployment)["containers"][0]["args"]
    return args


@pytest.mark.parametrize("file", sorted(k8s.FILES))
def test_committed_manifests_are_the_current_render(file: str) -> None:
    assert (K8S / file).read_text(encoding="utf-8") == k8s.render(file), (
        "run: python -m cluster.k8s --write k8s"
    )


def test_default_render_is_domains_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == RENDERED.read_text(encoding="utf-8")


@needs_kuberay_crds
@pytest.mark.parametrize("file", sorted(p.name for p in K8S.glob("*.yaml")))
def test_every_k8s_file_is_valid(file: str) -> None:
    """Also the hand-written ones (rescore-job.yaml)."""
    assert manifests.validate(K8S / file) == []


def test_an_invalid_deployment_is_reported(tmp_path: Path) -> None:
    broken = services.domain_documents()[0]
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    problems = manifests.validate(path)
    assert problems
    assert "Deployment eco2-auth" in problems[0]


def test_every_service_runs_as_its_own_http_deployment() -> None:
    deployments, services = _by_kind("Deployment"), _by_kind("Service")
    for name in SERVICES:
        args = _args(deployments[f"eco2-{name}"])
        assert args[:2] == ["-m", "runtime.domain_host"]
        assert args[args.index("--serve") + 1] == f"{name}=8000"
        assert args[args.index("--host") + 1] == "0.0.0.0"  # reachable through its Service
        assert "--consumers" not in args  # consumers have their own Deployments
        assert f"eco2-{name}" in services


def test_every_consumer_of_the_local_stack_is_hosted_exactly_once() -> None:
    """What ``--consumers all`` runs locally, each consumer in exactly one Deployment."""
    settings = Settings.model_construct()
    everything = sorted(s.name for s in consumer_specs([*SERVICES, *OTHER_CONSUMERS], settings))
    hosted: list[str] = []
    for deployment in _by_kind("Deployment").values():
        args = _args(deployment)
        if args[:2] == ["-m", "runtime.domain_host"] and "--consumers" in args:
            groups = args[args.index("--consumers") + 1 :]
            hosted += [s.name for s in consumer_specs(groups, settings)]
            assert deployment["spec"]["replicas"] <= consumers.PARTITIONS
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one group at a time
    assert sorted(hosted) == everything
    assert "scan.reward_compensation" in hosted  # OTHER_CONSUMERS are covered too


def test_one_relay_per_slot_owner_single_writer() -> None:
    deployments = _by_kind("Deployment")
    relays = {n: d for n, d in deployments.items() if _args(d)[:2] == ["-m", "cdc.relay"]}
    assert sorted(relays) == sorted(f"eco2-cdc-relay-{db}" for db in DOMAIN_DATABASES)
    for name, relay in relays.items():
        assert relay["spec"]["replicas"] == 1
        assert relay["spec"]["strategy"] == {"type": "Recreate"}
        args = _args(relay)
        assert args[-1] == name.removeprefix("eco2-cdc-relay-")  # exactly one database
        events = {a.removeprefix("--events=") for a in args if a.startswith("--events=")}
        assert events == {f"{agg}={ref}" for agg, ref in EVENT_REGISTRIES.items()}
    selected = {
        d["spec"]["selector"]["app.kubernetes.io/name"] for d in _by_kind("Service").values()
    }
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in _by_kind("HorizontalPodAutoscaler").values()
    }
    assert not (selected | scaled) & set(relays)


def test_autoscalers_cover_the_stateless_http_services_only() -> None:
    deployments, services = _by_kind("Deployment"), _by_kind("Service")
    scaled = {}
    for hpa in _by_kind("HorizontalPodAutoscaler").values():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["minReplicas"] == deployments[target["name"]]["spec"]["replicas"]
        scaled[target["name"]] = deployments[target["name"]]
    assert set(scaled) == set(services)  # every HTTP Deployment, nothing without a Service
    assert set(scaled) == {f"eco2-{s}" for s in [*SERVICES, "gateway"]}
    for deployment in scaled.values():  # utilisation is measured against the request
        assert _pod(deployment)["containers"][0]["resources"]["requests"]["cpu"]


def test_migration_job_runs_first_and_every_database_user_waits_for_it() -> None:
    job = _by_kind("Job")[migration.migration_job_name()]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == objects.IMAGE
    assert container["args"] == ["-m", "eco2.migrations"]  # the kernel only, no domain host
    assert job["metadata"]["name"].endswith(objects.IMAGE.rpartition(":")[2].replace(".", "-"))
    for name, deployment in _by_kind("Deployment").items():
        init = _pod(deployment).get("initContainers", [])
        waits = [c["args"] for c in init] == [["-m", "eco2.migrations", "--wait"]]
        no_database = name in ("eco2-gateway", "eco2-authz")
        assert waits != no_database, name


def test_pending_migrations_lists_what_is_not_recorded() -> None:
    every = {d: {m.name for m in migrations_for(d)} for d in DOMAIN_DATABASES}
    assert migrations.pending_migrations(every) == []
    without_scan = {d: names for d, names in every.items() if d != "scan"}
    pending = migrations.pending_migrations(without_scan)
    assert pending == [f"scan:{m.name}" for m in migrations_for("scan")]
    assert pending  # the scan database has migrations of its own


def test_migrate_refuses_without_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECO2_DB__URL", raising=False)
    assert migrations.main([]) == 2
    assert migrations.main(["--wait"]) == 2


def test_every_container_runs_the_one_image() -> None:
    for file in [f for f in k8s.FILES if f.endswith(".yaml")]:
        for doc in _documents(file):
            if doc["kind"] not in ("Deployment", "Job"):
                continue
            pod = doc["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                gateway_pod = doc["metadata"]["name"] == "eco2-gateway"
                expected = gateway.ENVOY_IMAGE if gateway_pod else objects.IMAGE
                assert container["image"] == expected


def _envoy_manager() -> dict[str, Any]:
    listener = gateway.envoy_config()["static_resources"]["listeners"][0]
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def test_envoy_routes_match_the_local_gateway() -> None:
    manager = _envoy_manager()
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    # A job-starting route's POST has a route of its own just before it.
    general = [r for r in routes if "headers" not in r["match"]]
    matches = [r["match"] for r in general]
    assert matches == [
        {"path_separated_prefix": r.prefix} if r.literal else {"safe_regex": {"regex": r.regex()}}
        for r in ROUTES
    ]
    checks = [r["typed_per_filter_config"] for r in general]
    for route, per_route in zip(ROUTES, checks, strict=True):
        # Admission control is off on every route but the job-starting POSTs (below).
        assert per_route.pop(gateway.ADMISSION_CONTROL)["disabled"] is True
        # The upload streams its body on (the image service counts it); every other body is
        # held to the local gateway's limit.
        body_limit = per_route.pop(gateway.BUFFER, None)
        assert (body_limit is not None) == route.upload
        if body_limit is not None:
            assert body_limit["disabled"] is True
        if route.sign_in:  # the token verified by jwt_authn, then ext_authz's say
            assert per_route == {
                gateway.JWT_AUTHN: {
                    "@type": per_route[gateway.JWT_AUTHN]["@type"],
                    "requirement_name": gateway.SIGNED_IN,
                }
            }
        else:
            assert {c["disabled"] for c in per_route.values()} == {True}
            assert set(per_route) == {gateway.JWT_AUTHN, gateway.EXT_AUTHZ}
    assert [r.prefix for r in ROUTES if r.upload] == ["/api/v1/images/upload"]
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters == [
        gateway.BUFFER,
        gateway.JWT_AUTHN,
        gateway.EXT_AUTHZ,
        gateway.ADMISSION_CONTROL,
        "envoy.filters.http.router",
    ]
    buffer = manager["http_filters"][0]["typed_config"]
    assert buffer["max_request_bytes"] == Settings().api.max_body_bytes
    jwks = manager["http_filters"][1]["typed_config"]["providers"]["eco2"]["remote_jwks"]
    clusters = {c["name"] for c in gateway.envoy_config()["static_resources"]["clusters"]}
    assert jwks["http_uri"]["cluster"] in clusters


def test_envoy_throttles_the_job_starting_posts_as_the_local_gateway_does() -> None:
    manager = _envoy_manager()
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    throttled = [r for r in routes if gateway.ADMISSION_CONTROL not in r["typed_per_filter_config"]]
    shed = [r for r in ROUTES if r.shed]
    assert [r["match"] for r in throttled] == [
        {"path_separated_prefix": r.prefix, "headers": [gateway.POST_ONLY]}
        if r.literal
        else {"safe_regex": {"regex": r.regex()}, "headers": [gateway.POST_ONLY]}
        for r in shed
    ]
    assert {r.prefix for r in shed} == {"/api/v1/scan", "/api/v1/chat/*/messages"}
    for route in throttled:  # each right before its route for the other methods
        after = routes[routes.index(route) + 1]
        assert after["match"] == {k: v for k, v in route["match"].items() if k != "headers"}
        assert after["route"] == route["route"]
    api = Settings().api
    config = manager["http_filters"][3]["typed_config"]
    # Envoy refuses with (requests - accepts / sr_threshold) / (requests + 1): sr = 1 / k.
    assert config["sr_threshold"]["default_value"]["value"] == pytest.approx(100 / api.shed_k, 0.01)
    assert config["sampling_window"] == f"{round(api.shed_horizon_s)}s"
    # Only a 503 counts against the service: [100, 503) and [504, 600) are accepts.
    ranges = config["success_criteria"]["http_criteria"]["http_success_status"]
    accepted = {code for r in ranges for code in range(r["start"], r["end"])}
    assert accepted == set(range(100, 600)) - {503}
    # Envoy's own 503 tells the client when to come back, in the services' error shape.
    (mapper,) = manager["local_reply_config"]["mappers"]
    assert mapper["filter"]["status_code_filter"]["comparison"]["value"]["default_value"] == 503
    assert mapper["headers_to_add"][0]["header"]["key"] == "retry-after"
    assert mapper["body_format_override"]["json_format"]["error"]["code"] == "overloaded"
    # The two routes of one prefix are written out in full: no YAML alias for Envoy to resolve.
    assert "&id0" not in k8s.render("domains.yaml")


# --- Debezium --------------------------------------------------------------------------------


def _relay_record(traceparent: str) -> Any:
    """What the relay publishes for one event-store row."""
    values = {
        "event_id": b"6f1c1f3e-8a59-4a53-9f0e-3d6f7a1b2c3d",
        "aggregate_type": b"scan",
        "aggregate_id": b"scan-42",
        "aggregate_version": b"3",
        "event_type": b"ScanCompleted",
        "schema_version": b"1",
        "payload": b'{"scan_id": "scan-42"}',
        "metadata": f'{{"traceparent": "{traceparent}"}}'.encode(),
        "occurred_at": b"2026-12-06 10:00:00+00",
    }
    return record_from_values(RowLayout(EVENT_COLUMNS), [values[c] for c in EVENT_COLUMNS], {})


def test_debezium_connectors_publish_what_the_relay_publishes() -> None:
    """Topic, key and headers equal the relay's, except the relay's ``traceparent`` header: the
    router places columns only and the event store has none, so with Debezium the trace context
    travels inside the ``metadata`` header, where consumers find it all the same."""
    docs = _documents("debezium-outbox.yaml")
    connectors = [d for d in docs if d["kind"] == "KafkaConnector"]
    assert len(connectors) == len(DOMAIN_DATABASES)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    record = _relay_record(traceparent)
    relay_headers = {name for name, _ in record.headers}
    assert H_TRACEPARENT in relay_headers
    debezium_headers = [(n, v) for n, v in record.headers if n != H_TRACEPARENT]
    envelope = envelope_from_message(record.key, record.value, debezium_headers)
    assert envelope.metadata.traceparent == traceparent
    for connector, domain in zip(connectors, DOMAIN_DATABASES, strict=True):
        config = connector["spec"]["config"]
        assert config["database.dbname"] == f"eco2_{domain}"
        assert config["slot.name"] != slot_name(config["database.dbname"])  # never the relay's
        placement = config["transforms.outbox.table.fields.additional.placement"].split(",")
        headers = {p.split(":")[2] for p in placement if p.split(":")[1] == "header"}
        columns = {p.split(":")[0] for p in placement}
        # The router adds `id` from table.field.event.id.
        assert {H_ID, *headers} == relay_headers - {H_TRACEPARENT}
        assert columns <= set(EVENT_COLUMNS)  # only columns the event store has
        assert config["transforms.outbox.table.field.event.id"] == "event_id"
        assert config["transforms.outbox.table.field.event.key"] == "aggregate_id"
        topic = config["transforms.outbox.route.topic.replacement"].replace(
            "${routedByValue}", "scan"
        )
        assert topic == record.topic == topic_for("scan")
        assert record.key == b"scan-42"
        assert connector["metadata"]["labels"]["strimzi.io/cluster"] == debezium.CONNECT_CLUSTER
