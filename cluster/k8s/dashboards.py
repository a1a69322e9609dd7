"""Grafana dashboards of the stack's metrics (``k8s/observability/dashboards/*.json``), rendered
from the panel tables below: scan, chat, CDC and the reward saga, Ray Serve.

The metric names are what Prometheus scrapes: the processes' OpenTelemetry instruments through
the Prometheus exporter (``http_server_request_duration_seconds``, ``eco2_consumer_events_total``,
``eco2_cdc_lag_bytes`` …) and, from Ray's metrics agent, ``ray_``-prefixed ones — the stages'
(``ray_eco2_model_calls_total`` …, :mod:`serve.metrics`) and Serve's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    unit: str = "short"
    legend: str = ""


def _rate_by(metric: str, by: str, where: str = "") -> str:
    selector = f"{metric}{{{where}}}" if where else metric
    return f"sum by ({by}) (rate({selector}[5m]))"


def _p95(metric: str, by: str, where: str = "") -> str:
    selector = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return f"histogram_quantile(0.95, sum by ({by}, le) (rate({selector}[5m])))"


HTTP = "http_server_request_duration_seconds"
_ROUTE_SCAN = 'http_route=~"/api/v1/scan.*"'
_ROUTE_CHAT = 'http_route=~"/api/v1/chat.*"'

DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...]]] = {
    "scan": (
        "Eco² — scan",
        (
            Panel(
                "Scan requests through the gateway",
                _rate_by(f"{HTTP}_count", "http_route, http_response_status_code", _ROUTE_SCAN),
                "reqps",
                "{{http_route}} {{http_response_status_code}}",
            ),
            Panel(
                "Gateway p95 by route (streams last until done)",
                _p95(HTTP, "http_route", f'job="gateway",{_ROUTE_SCAN}'),
                "s",
                "{{http_route}}",
            ),
            Panel(
                "Model calls by kind and outcome",
                _rate_by("ray_eco2_model_calls_total", "kind, outcome"),
                "reqps",
                "{{kind}} {{outcome}}",
            ),
            Panel(
                "Model call p95 by kind",
                _p95("ray_eco2_model_call_seconds", "kind"),
                "s",
                "{{kind}}",
            ),
            Panel(
                "Tokens per second",
                _rate_by("ray_eco2_model_tokens_total", "kind, direction"),
                "short",
                "{{kind}} {{direction}}",
            ),
            Panel(
                "Submits refused (503 in-flight limit, 429 per-user limit)",
                _rate_by("ray_eco2_admission_rejected_total", "pipeline, reason"),
                "reqps",
                "{{pipeline}} {{reason}}",
            ),
            Panel(
                "In-flight limit learnt per ingress replica, and its peak in flight",
                "ray_eco2_admission_inflight_limit or ray_eco2_admission_inflight_peak",
                "short",
                "{{__name__}} {{pipeline}} {{WorkerId}}",
            ),
            Panel(
                "Open job streams",
                "sum by (pipeline) (eco2_stream_connections)",
                "short",
                "{{pipeline}}",
            ),
        ),
    ),
    "chat": (
        "Eco² — chat",
        (
            Panel(
                "Chat requests through the gateway",
                _rate_by(f"{HTTP}_count", "http_route, http_response_status_code", _ROUTE_CHAT),
                "reqps",
                "{{http_route}} {{http_response_status_code}}",
            ),
            Panel(
                "Intent and answer calls by outcome",
                _rate_by("ray_eco2_model_calls_total", "kind, outcome", 'kind=~"intent|text"'),
                "reqps",
                "{{kind}} {{outcome}}",
            ),
            Panel(
                "Model call p95 (intent, answer stream opening)",
                _p95("ray_eco2_model_call_seconds", "kind", 'kind=~"intent|text"'),
                "s",
                "{{kind}}",
            ),
            Panel(
                "Open chat streams",
                'sum(eco2_stream_connections{pipeline="chat"})',
                "short",
                "streams",
            ),
        ),
    ),
    "cdc-saga": (
        "Eco² — CDC and the reward saga",
        (
            Panel(
                "Relay lag (bytes behind the WAL)",
                "max by (database) (eco2_cdc_lag_bytes)",
                "bytes",
                "{{database}}",
            ),
            Panel(
                "Oldest event waiting for Kafka",
                "max by (database) (eco2_cdc_oldest_pending_s_seconds)",
                "s",
                "{{database}}",
            ),
            Panel(
                "Events published per second",
                "sum by (database) (rate(eco2_cdc_events_total[5m]))",
                "short",
                "{{database}}",
            ),
            Panel(
                "Consumer lag (messages)",
                "max by (group) (eco2_consumer_lag)",
                "short",
                "{{group}}",
            ),
            Panel(
                "Events applied per group",
                _rate_by("eco2_consumer_events_total", "group", 'outcome="applied"'),
                "short",
                "{{group}}",
            ),
            Panel(
                "Saga: rewards granted, awarded, rejected",
                _rate_by(
                    "eco2_consumer_events_total",
                    "group, event_type",
                    'group=~"character.rewards|scan.reward_compensation",outcome="applied"',
                ),
                "short",
                "{{group}} {{event_type}}",
            ),
            Panel(
                "Dead letters (consumers and relay)",
                _rate_by("eco2_consumer_events_total", "group", 'outcome="dead_lettered"')
                + " or sum by (database) (rate(eco2_cdc_dead_lettered_total[5m]))",
                "short",
                "{{group}}{{database}}",
            ),
        ),
    ),
    "serve": (
        "Eco² — Ray Serve",
        (
            Panel(
                "Target and desired replicas",
                "max by (application, deployment) (ray_serve_autoscaling_target_replicas)",
                "short",
                "{{application}}/{{deployment}}",
            ),
            Panel(
                "Ongoing requests at the replicas",
                "sum by (application, deployment) (ray_serve_num_ongoing_requests_at_replicas)",
                "short",
                "{{application}}/{{deployment}}",
            ),
            Panel(
                "Processing p95 by deployment",
                _p95("ray_serve_deployment_processing_latency_ms", "deployment"),
                "ms",
                "{{deployment}}",
            ),
            Panel(
                "Requests per deployment",
                _rate_by("ray_serve_deployment_request_counter_total", "deployment"),
                "reqps",
                "{{deployment}}",
            ),
            Panel(
                "Errors per deployment",
                _rate_by("ray_serve_deployment_error_counter_total", "deployment"),
                "reqps",
                "{{deployment}}",
            ),
            Panel(
                "Healthy replicas",
                "sum by (deployment) (ray_serve_deployment_replica_healthy)",
                "short",
                "{{deployment}}",
            ),
        ),
    ),
}


def dashboard(name: str) -> dict[str, Any]:
    """The Grafana dashboard model of ``name`` (two panels per row, 8 units high)."""
    title, panels = DASHBOARDS[name]
    return {
        "uid": f"eco2-{name}",
        "title": title,
        "tags": ["eco2"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]
        },
        "panels": [
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel.title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [{"refId": "A", "expr": panel.expr, "legendFormat": panel.legend}],
            }
            for index, panel in enumerate(panels)
        ],
    }


def render(name: str) -> str:
    return json.dumps(dashboard(name), indent=2, ensure_ascii=False) + "\n"
