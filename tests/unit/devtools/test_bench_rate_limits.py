"""What ``eco2 bench scan`` and ``bench chat`` report about the per-user limits: the stack's rules
(read from its supervisor's environment) and the limit's 429s apart from other failures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cluster.state import StackState
from devtools.bench.scan import rate_limited_counts, stack_rate_limits
from eco2.settings import RateLimitSettings


@pytest.fixture
def supervisor() -> Iterator[int]:
    """A process standing in for the stack's supervisor, started with raised limits."""
    env = {
        **os.environ,
        "ECO2_RATE_LIMIT__SCAN": "0",
        "ECO2_RATE_LIMIT__CHAT": '{"limit": 1000, "period_s": 1, "burst": 50}',
        "ECO2_RATE_LIMIT__UPLOAD__LIMIT": "7",
    }
    env.pop("ECO2_RATE_LIMIT__UPLOAD", None)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_the_report_names_the_rules_the_stack_runs_with(supervisor: int) -> None:
    limits = stack_rate_limits(StackState(run_dir="/nowhere", supervisor_pid=supervisor))
    assert limits["scan"] == "off"
    assert limits["chat"] == {"limit": 1000, "period_s": 1.0, "burst": 50}
    assert limits["upload"] == {"limit": 7, "period_s": 60.0, "burst": 1}


def test_a_stack_started_without_the_variables_reports_the_defaults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECO2_RATE_LIMIT__")}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        limits = stack_rate_limits(StackState(run_dir="/nowhere", supervisor_pid=child.pid))
    finally:
        child.kill()
        child.wait()
    assert limits["scan"] == RateLimitSettings().scan.model_dump()


def test_a_supervisor_that_is_gone_is_reported_as_unknown() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    limits = stack_rate_limits(StackState(run_dir="/nowhere", supervisor_pid=child.pid))
    assert "unknown" in limits


def test_the_limits_refusals_are_counted_apart() -> None:
    result = {
        "failed": 7,
        "failures": {"submit_429_rate_limited": 4, "submit_429_overloaded": 2, "scan_error": 1},
        "ramp_failures": {"submit_429_rate_limited": 3},
    }
    assert rate_limited_counts(result) == {
        "rate_limited": 4,
        "failed_not_rate_limited": 3,
        "ramp_rate_limited": 3,
    }
