"""``eco2 bench skeleton`` measures a real Serve skeleton on a Ray head of its own: every scan
passes both sleeping stages (its time is at least their sum), and the head is gone afterwards."""

from __future__ import annotations

import psutil
import pytest

from devtools.bench.skeleton import run_skeleton, skeleton_config
from eco2.settings import load_settings

pytestmark = pytest.mark.timeout(300)


def test_the_skeleton_config_deploys_one_application_on_loopback() -> None:
    config = skeleton_config(18999, 0.05, 0.07)
    assert config["http_options"] == {"host": "127.0.0.1", "port": 18999}
    (app,) = config["applications"]
    assert app["import_path"] == "devtools.bench.skeleton_app:build_app"
    assert app["args"] == {"vision_s": 0.05, "answer_s": 0.07}


def test_the_skeleton_serves_closed_loop_users_through_both_stages_and_stops() -> None:
    settings = load_settings(ray={"address": None})
    result = run_skeleton(settings, users=20, duration_s=5, ramp_s=0, vision_s=0.05, answer_s=0.07)
    assert result["failed"] == 0, result["failures"]
    assert result["completed"] > 100  # 20 users, ~0.12 s a scan, 5 s: ~800 at the ideal
    assert result["e2e_p50_s"] >= 0.12  # both stages slept: the call went through each
    stages = result["head_cpu_ms_per_scan"]
    assert any(name.endswith("SkeletonIngress") for name in stages), stages
    left = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any("ServeReplica:skeleton" in part for part in p.info["cmdline"] or [])
    ]
    assert not left, left
