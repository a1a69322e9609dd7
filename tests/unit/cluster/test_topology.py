from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from cluster import topology
from cluster.component import Component, Context, RunPaths
from cluster.ports import FORBIDDEN_PORTS
from cluster.stack import ordered
from eco2.settings import Settings


def _component(name: str, *requires: str) -> Component:
    return Component(name=name, url=lambda _: "", health=lambda _: None, requires=requires)


def test_ordered_puts_requirements_first_and_keeps_declaration_order() -> None:
    declared = [_component("serve", "ray"), _component("postgres"), _component("ray")]

    assert [c.name for c in ordered(declared)] == ["postgres", "ray", "serve"]


def test_ordered_refuses_unknown_requirements_and_cycles() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ordered([_component("serve", "ray")])
    with pytest.raises(ValueError, match="cycle"):
        ordered([_component("a", "b"), _component("b", "a")])


def test_default_topology_starts_ray_before_serve() -> None:
    names = [c.name for c in ordered(topology.default_components())]

    assert names.index("ray") < names.index("serve") < names.index("scan_app")
    for dependency in ("postgres", "valkey", "model_sim"):
        assert names.index(dependency) < names.index("scan_app")
    assert names.index("postgres") < names.index("cdc_relay")
    assert names.index("kafka") < names.index("cdc_relay")
    for dependency in ("postgres", "valkey", "kafka"):
        assert names.index(dependency) < names.index("domains")
    assert names[-1] == "gateway"  # the one public entry opens when everything behind it is up
    assert set(names) == {
        *("traces", "prometheus"),
        *("postgres", "valkey", "kafka", "ray", "serve", "model_sim", "scan_app", "chat_app"),
        "cdc_relay",
        *("domains", "authz", "streams", "gateway"),
    }
    without = {c.name for c in topology.default_components(traces=False, prometheus=False)}
    assert without == set(names) - {"traces", "prometheus"}


def test_the_trace_backend_is_started_unless_turned_off_or_spans_go_elsewhere() -> None:
    assert topology.wants_trace_backend(Settings())
    assert not topology.wants_trace_backend(Settings(telemetry={"backend": "none"}))
    collector = Settings(telemetry={"otlp_endpoint": "http://collector:4318"})
    assert not topology.wants_trace_backend(collector)


def test_spans_sent_to_a_collector_of_the_users_are_kept_in_the_stacks_environment() -> None:
    own = Settings(
        telemetry={"traces": "otlp", "otlp_endpoint": "http://c:4318", "sample_ratio": 0.5}
    )
    assert topology.exported_traces_env(own) == {
        "ECO2_TELEMETRY__TRACES": "otlp",
        "ECO2_TELEMETRY__OTLP_ENDPOINT": "http://c:4318",
        "ECO2_TELEMETRY__SAMPLE_RATIO": "0.5",
    }
    assert topology.exported_traces_env(Settings()) == {}  # Phoenix's component says it then


def test_service_hosts_give_every_service_one_port_and_url() -> None:
    from runtime.domain_host import SERVICES

    hosts = (topology.DOMAINS, topology.AUTHZ, topology.STREAMS)
    hosted = [port for host in hosts for port in host.ports if port != "metrics"]
    assert sorted(hosted) == sorted(SERVICES)  # each service in exactly one process
    assert all(host.ports[-1] == "metrics" for host in hosts)  # and one metrics port each
    assert topology.AUTHZ.ports == ("authz", "metrics")  # the sign-in check: its own process
    assert set(SERVICES) >= {"auth", "authz", "character", "my", "notification", "location"}
    ports = {"authz": 41000, "metrics": 41001}
    ctx = Context(Settings(), RunPaths(Path("/tmp/r")), ports, {}, None, None)
    assert topology.AUTHZ.exports(ctx) == {
        "ECO2_SERVICES__AUTHZ_URL": "http://127.0.0.1:41000",
        "ECO2_METRICS_URL_AUTHZ": "http://127.0.0.1:41001/metrics",
    }
    assert topology.AUTHZ.launch is not None
    launched = topology.AUTHZ.launch(ctx)
    assert launched.env["ECO2_TELEMETRY__METRICS_PORT"] == "41001"
    assert topology.AUTHZ.launch is not None
    assert "--consumers" not in topology.AUTHZ.launch(ctx).argv


def test_ray_head_gets_every_port_explicitly() -> None:
    ports = {name: 40000 + i for i, name in enumerate(topology.RAY_PORTS)}
    ctx = Context(Settings(), RunPaths(Path("/tmp/r")), ports, {}, None, 30000)
    assert topology.RAY.launch is not None

    argv = list(topology.RAY.launch(ctx).argv)

    assert topology.RAY.launch(ctx).session_nice is None  # only local AI nodes are weighted
    for flag in ("--port", "--node-manager-port", "--object-manager-port", "--dashboard-port"):
        assert flag in argv
    for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port"):
        assert flag in argv
    for flag in ("--metrics-export-port", "--ray-client-server-port", "--runtime-env-agent-port"):
        assert flag in argv
    assert argv[argv.index("--port") + 1] == str(ports["gcs"])
    assert argv[argv.index("--min-worker-port") + 1] == "30000"
    numbers = {int(a) for a in argv if a.isdigit()}
    assert not numbers & FORBIDDEN_PORTS


def test_serve_gets_ports_of_its_own_inside_the_stacks_block() -> None:
    ports = {name: 40000 + i for i, name in enumerate(topology.RAY_PORTS)}
    ctx = Context(Settings(), RunPaths(Path("/tmp/r")), ports, {}, None, 30000)
    assert topology.RAY.launch is not None

    env = topology.RAY.launch(ctx).env
    argv = list(topology.RAY.launch(ctx).argv)

    max_worker = int(argv[argv.index("--max-worker-port") + 1])
    http_low = int(env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"])
    grpc_high = int(env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"])
    assert max_worker < http_low <= grpc_high < 30000 + topology.RAY_PORT_BLOCK
    assert env["RAY_SERVE_HAPROXY_STATS_PORT"] == str(ports["haproxy_stats"])
    assert env["RAY_SERVE_HAPROXY_METRICS_PORT"] == str(ports["haproxy_metrics"])
    assert env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] == str(ports["serve_fallback_http"])
    assert env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] == str(ports["serve_fallback_grpc"])
    assert "--serve-fallback-http-port" not in argv  # Serve takes it from the environment
    assert len(str(RunPaths(Path("/tmp") / ("d" * 120)).haproxy_dir)) <= 27


def test_local_ray_nodes_say_their_auth_mode_whatever_token_file_the_user_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray 2.60 turns token auth on when ~/.ray/auth_token exists and RAY_AUTH_MODE is unset;
    the launcher's probes carry no token, so its nodes set the mode themselves."""
    ports = {name: 40000 + i for i, name in enumerate(topology.RAY_PORTS)}
    ctx = Context(Settings(), RunPaths(Path("/tmp/r")), ports, {}, None, 30000)
    assert topology.RAY.launch is not None
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert topology.RAY.launch(ctx).env["RAY_AUTH_MODE"] == "disabled"
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert topology.RAY.launch(ctx).env["RAY_AUTH_MODE"] == "token"


def test_ray_head_start_drops_haproxy_dirs_of_earlier_sessions(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    stale = paths.haproxy_dir / ("a" * 56)
    stale.mkdir(parents=True)
    (stale / "haproxy.cfg").write_text("global\n")
    ports = {name: 40000 + i for i, name in enumerate(topology.RAY_PORTS)}
    assert topology.RAY.launch is not None

    env = topology.RAY.launch(Context(Settings(), paths, ports, {}, None, 30000)).env

    assert paths.haproxy_dir.is_dir()
    assert not stale.exists()
    assert env["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"] == str(paths.haproxy_dir)
    shutil.rmtree(paths.haproxy_dir)  # a long tmp_path puts it under /tmp instead (short paths)


def test_external_urls_replace_embedded_components() -> None:
    settings = Settings(db={"url": "postgresql://me@db.example:5432/postgres"})

    assert topology.POSTGRES.external_url(settings) == "postgresql://me@db.example:5432/postgres"
    assert topology.VALKEY.external_url(settings) is None


def test_long_run_dirs_move_unix_sockets_to_tmp() -> None:
    deep = RunPaths(Path("/tmp") / ("d" * 120))

    assert len(str(deep.ray_temp)) <= 40
    assert str(deep.pg_socket_dir).startswith("/tmp/eco2-pg-")
    assert RunPaths(Path("/w/.eco2")).ray_temp == Path("/w/.eco2/ray")


def test_adding_a_component_is_one_declaration() -> None:
    extra = replace(topology.MODEL_SIM, name="gateway", requires=("serve",))

    names = [c.name for c in ordered([*topology.default_components(), extra])]

    assert names[-1] == "gateway"


def _ray_ctx(settings: Settings, ports: dict[str, int], env: dict[str, str]) -> Context:
    return Context(settings, RunPaths(Path("/tmp/r")), ports, env, None, 30000)


def test_ai_worker_nodes_join_before_serve_and_the_head_then_offers_no_ai_capacity() -> None:
    names = [c.name for c in ordered(topology.default_components(ai_workers=2))]
    workers = ["ray_ai_worker_1", "ray_ai_worker_2"]
    assert all(names.index("ray") < names.index(w) < names.index("serve") for w in workers)
    assert topology.ai_workers_in(names) == 2
    assert topology.ai_workers_in(c.name for c in topology.default_components()) == 0

    ports = {name: 40000 + i for i, name in enumerate(topology.RAY_PORTS)}
    alone, beside = Settings(), Settings.model_validate({"ray": {"ai_workers": 2}})
    assert topology.RAY.launch is not None
    for settings, offered in ((alone, alone.ray.ai_worker_slots), (beside, 0)):
        argv = list(topology.RAY.launch(_ray_ctx(settings, ports, {})).argv)
        assert json.loads(argv[argv.index("--resources") + 1]) == {"ai_worker": offered}


def test_an_ai_worker_node_offers_only_ai_capacity_on_ports_of_its_own() -> None:
    node = topology.ai_worker_node(1)
    ports = {name: 41000 + i for i, name in enumerate(node.ports)}
    ctx = _ray_ctx(Settings(), ports, {"ECO2_RAY__ADDRESS": "127.0.0.1:40000"})
    assert node.launch is not None

    argv = list(node.launch(ctx).argv)

    assert argv[argv.index("--address") + 1] == "127.0.0.1:40000"
    assert "--head" not in argv
    assert argv[argv.index("--num-cpus") + 1] == "0"
    resources = json.loads(argv[argv.index("--resources") + 1])
    assert resources == {"ai_worker": Settings().ray.ai_worker_slots}
    for name, port in ports.items():
        assert argv[argv.index(f"--{name.replace('_', '-')}-port") + 1] == str(port)
    assert argv[argv.index("--min-worker-port") + 1] == "30000"
    # A local node's session outweighs a single process's, as a node's own cores would.
    assert node.launch(ctx).session_nice == topology.AI_NODE_SESSION_NICE < 0
    needles = node.watch_paths(ctx)
    assert needles
    assert all(str(ports["node_manager"]) in needle for needle in needles)
    assert not any("/tmp/r" in needle for needle in needles)  # the head's processes are not its


def test_gcs_fault_tolerance_is_one_setting() -> None:
    ports = {name: 40000 + i for i, name in enumerate(topology.RAY_PORTS)}
    assert topology.RAY.launch is not None
    plain = topology.RAY.launch(_ray_ctx(Settings(), ports, {})).env
    assert "RAY_REDIS_ADDRESS" not in plain
    settings = Settings.model_validate({"ray": {"gcs_redis_address": "redis://10.0.0.5:6380"}})
    env = topology.RAY.launch(_ray_ctx(settings, ports, {})).env
    assert env["RAY_REDIS_ADDRESS"] == "10.0.0.5:6380"
    again = topology.RAY.launch(_ray_ctx(settings, ports, {})).env
    assert env["RAY_external_storage_namespace"] == again["RAY_external_storage_namespace"]
