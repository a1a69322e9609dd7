"""Health probes: each returns ``None`` when the part answers, else a short reason."""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

_TIMEOUT_S = 2.0
_HTTP = httpx.Client(timeout=_TIMEOUT_S, limits=httpx.Limits(max_keepalive_connections=0))
"""One client for every HTTP probe: a new client builds an SSL context (~30 ms of CPU), which
made the supervisor's health round cost ~0.6 s of CPU every 5 s. No connection is kept: a
restarted part is probed on a fresh one."""
_REDIS: dict[str, Any] = {}
_REDIS_LOCK = threading.Lock()


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> str | None:
    try:
        response = _HTTP.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"GET {url}: HTTP {response.status_code}"
    return None


SERVE_NO_ROUTES = "Route table is not populated yet."
"""Ray Serve's proxy answers /-/healthz with 503 and this text until an application is deployed."""


def serve_proxy_ok(base_url: str) -> str | None:
    """The Serve HTTP proxy is up: ``/-/healthz`` is 200, or 503 only because no app is deployed."""
    url = f"{base_url}/-/healthz"
    try:
        response = _HTTP.get(url)
    except httpx.HTTPError as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}"
    if response.status_code == 200 or SERVE_NO_ROUTES in response.text:
        return None
    return f"GET {url}: HTTP {response.status_code} {response.text[:200]!r}"


def http_reachable(url: str, headers: Mapping[str, str] | None = None) -> str | None:
    """Any HTTP answer below 500 (an external API may want credentials for a 200)."""
    try:
        response = _HTTP.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}"
    return None if response.status_code < 500 else f"GET {url}: HTTP {response.status_code}"


def tcp_ok(address: str) -> str | None:
    """``host:port`` accepts a TCP connection."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=_TIMEOUT_S):
            return None
    except (OSError, ValueError) as exc:
        return f"connect {address}: {exc}"


def postgres_ok(dsn: str) -> str | None:
    import psycopg2

    try:
        conn = psycopg2.connect(dsn, connect_timeout=2)
    except psycopg2.Error as exc:
        return f"connect {_redact(dsn)}: {str(exc).strip()}"
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error as exc:
        return f"SELECT 1 on {_redact(dsn)}: {str(exc).strip()}"
    finally:
        conn.close()
    return None


def redis_ok(url: str) -> str | None:
    import redis

    with _REDIS_LOCK:  # one client per URL: making one costs ~20 ms of CPU
        client = _REDIS.get(url)
        if client is None:
            client = _REDIS[url] = redis.Redis.from_url(
                url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
            )
    try:
        return None if client.ping() else f"PING {url}: no PONG"
    except redis.RedisError as exc:
        client.connection_pool.disconnect()  # a restarted server is reached on new connections
        return f"PING {url}: {exc}"


def kafka_ok(bootstrap: str) -> str | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        return f"metadata from {bootstrap}: {exc}"
    return None if metadata.brokers else f"metadata from {bootstrap}: no brokers"


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        return dsn.replace(f":{parts.password}@", ":***@")
    return dsn


def ray_nodes(dashboard_url: str) -> list[dict[str, Any]] | str:
    """The cluster's nodes as the head lists them, or why they cannot be listed."""
    url = f"{dashboard_url}/nodes?view=summary"
    try:
        summary = _HTTP.get(url).json()["data"]["summary"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}"
    nodes = []
    for node in summary:
        raylet = node.get("raylet", {})
        resources = raylet.get("resourcesTotal", {})
        nodes.append(
            {
                "node_id": raylet.get("nodeId"),
                "role": "head" if raylet.get("isHeadNode") else "worker",
                "state": raylet.get("state"),
                "node_manager_port": raylet.get("nodeManagerPort"),
                "cpu": resources.get("CPU", 0),
                # The dashboard spells custom resources in camel case.
                "ai_worker": resources.get("aiWorker", resources.get("ai_worker", 0)),
            }
        )
    return nodes


def ray_node_alive(dashboard_url: str | None, node_manager_port: int) -> str | None:
    """The head lists the node whose raylet listens on ``node_manager_port`` as alive."""
    if dashboard_url is None:
        return "no Ray dashboard to ask"
    nodes = ray_nodes(dashboard_url)
    if isinstance(nodes, str):
        return nodes
    for node in nodes:
        if node["node_manager_port"] == node_manager_port:
            return None if node["state"] == "ALIVE" else f"the head lists it as {node['state']}"
    return "the head does not list this node yet"


def serve_app_running(dashboard_url: str | None, app: str) -> str | None:
    """Serve reports application ``app`` RUNNING: every deployment has its replicas up."""
    if dashboard_url is None:
        return "no Ray dashboard to ask"
    url = f"{dashboard_url}/api/serve/applications/"
    try:
        status = _HTTP.get(url).json()["applications"][app]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return f"GET {url}: no application {app!r} yet ({type(exc).__name__})"
    if status.get("status") == "RUNNING":
        return None
    waiting = [
        f"{name} {details.get('status')}"
        for name, details in status.get("deployments", {}).items()
        if details.get("status") != "HEALTHY"
    ]
    return f"application {app} is {status.get('status')}: {', '.join(waiting) or 'starting'}"
