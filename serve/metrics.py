"""What the AI stages and their model calls record, with ``ray.util.metrics``: Ray's metrics
agent on each node exports them beside Ray's own (the dashboard's Metrics view and Prometheus,
through the node's metrics port), whichever replica or actor records them.

Names (Prometheus adds the ``ray_`` prefix): ``eco2_model_calls_total`` (kind, model, outcome:
``ok`` | ``repaired`` | ``failed``), ``eco2_model_call_seconds`` (kind), ``eco2_model_tokens_total``
(kind, direction: ``input`` | ``output``), ``eco2_admission_rejected_total`` (pipeline, reason:
``inflight`` | ``rate_limit``), ``eco2_admission_inflight_limit`` and
``eco2_admission_inflight_peak`` (pipeline; per ingress replica, set once a second).
Outside Ray (unit tests) recording does nothing.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 6, 8, 12, 20, 30, 60]

model_calls = Counter(
    "eco2_model_calls_total",
    description="Model calls by kind, model and outcome (ok, repaired, failed).",
    tag_keys=("kind", "model", "outcome"),
)
model_seconds = Histogram(
    "eco2_model_call_seconds",
    description="Model call latency, retries and repair included.",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("kind",),
)
model_tokens = Counter(
    "eco2_model_tokens_total",
    description="Tokens the model endpoint reported, by kind and direction.",
    tag_keys=("kind", "direction"),
)
admission_rejected = Counter(
    "eco2_admission_rejected_total",
    description="Submits an ingress refused: 503 past its in-flight limit, 429 past the user's.",
    tag_keys=("pipeline", "reason"),
)
admission_limit = Gauge(
    "eco2_admission_inflight_limit",
    description="The in-flight limit an ingress replica has learnt from its jobs' latency.",
    tag_keys=("pipeline",),
)
admission_peak = Gauge(
    "eco2_admission_inflight_peak",
    description="The most jobs an ingress replica ran at once over the limit's last window.",
    tag_keys=("pipeline",),
)
