"""The shipped alert rules and dashboards: valid PromQL (``promtool``, where installed), sound
Grafana models, and only metrics the code defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.k8s import dashboards
from cluster.topology import ALERT_RULES, prometheus_config

REPO = Path(__file__).resolve().parents[3]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian's prometheus: `make install`)"
)
SOURCES = ("eco2", "serve", "pipelines", "cdc", "runtime", "domains")
# Serve's own and the OpenTelemetry HTTP server histogram (FastAPI's and the gateway's).
FOREIGN = ("ray_serve_", "http_server_request_duration_seconds")


def _expressions() -> list[str]:
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    found = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for name in dashboards.DASHBOARDS:
        model = dashboards.dashboard(name)
        found += [target["expr"] for panel in model["panels"] for target in panel["targets"]]
    return found


def _defined_in_code() -> str:
    text = []
    for folder in SOURCES:
        text += [p.read_text(encoding="utf-8") for p in (REPO / folder).rglob("*.py")]
    return "\n".join(text).replace(".", "_")


@needs_promtool
def test_the_alert_rules_pass_promtool() -> None:
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(ALERT_RULES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"eco2:check:{i}", "expr": expr} for i, expr in enumerate(_expressions())]
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_is_a_grafana_model_with_queries_in_place() -> None:
    for name in dashboards.DASHBOARDS:
        model = json.loads(dashboards.render(name))
        assert model["uid"] == f"eco2-{name}"
        assert model["panels"], name
        ids = [panel["id"] for panel in model["panels"]]
        assert len(set(ids)) == len(ids)
        for panel in model["panels"]:
            assert panel["type"] == "timeseries"
            assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
            assert panel["targets"][0]["expr"].strip()


def test_every_metric_in_the_rules_and_dashboards_is_one_the_code_records() -> None:
    code = _defined_in_code()
    names = {
        token
        for expr in _expressions()
        for token in re.findall(r"\b(?:ray_)?eco2_[a-z_]+|\bray_serve_[a-z_]+|\bhttp_[a-z_]+", expr)
    }
    assert names
    for name in sorted(names):
        if name.startswith(FOREIGN):
            continue
        base = re.sub(r"_(total|bucket|count|sum)$", "", name.removeprefix("ray_"))
        # The exporter appends an instrument's unit: eco2.cdc.oldest_pending_s → …_s_seconds.
        bare = re.sub(r"_(seconds|bytes)$", "", base)
        assert base in code or bare in code, f"{name}: no instrument {base} in {SOURCES}"


def test_the_local_prometheus_scrapes_each_process_and_every_ray_node() -> None:
    config = prometheus_config(
        {"gateway": "http://127.0.0.1:4001/metrics", "domains": "http://127.0.0.1:4002/metrics"},
        Path("/run/ray/prom_metrics_service_discovery.json"),
        ALERT_RULES,
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["gateway"]["static_configs"] == [{"targets": ["127.0.0.1:4001"]}]
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [
        "/run/ray/prom_metrics_service_discovery.json"
    ]
    assert config["rule_files"] == [str(ALERT_RULES)]


def test_a_ray_node_is_scraped_as_often_as_its_workers_report() -> None:
    """Scraping the agent faster than Ray's workers report renders the same page again."""
    from ray._raylet import Config

    config = prometheus_config({}, Path("/run/ray/sd.json"), ALERT_RULES)
    ray_job = next(job for job in config["scrape_configs"] if job["job_name"] == "ray")
    assert ray_job["scrape_interval"] == f"{Config.metrics_report_interval_ms() // 1000}s"
    assert config["global"]["scrape_interval"] == "5s"  # the stack's own processes, unchanged
