"""``eco2 chaos``'s fast subset on the session stack: one process killed under a signed-in load,
and the model's fault mix over 100 scans and a few chat messages — every accepted job final,
none lost, no reward or answer twice, the read models equal to the stores, no committed stage
called again. The whole suite is ``eco2 chaos --scenario all`` (docs/reliability.md)."""

from __future__ import annotations

import json

import pytest

from devtools.chaos.faults import SCENARIOS, Stack
from devtools.chaos.run import Options, failed, run_scenario
from tests.conftest import StackUrls, stack_settings

pytestmark = pytest.mark.e2e


async def test_the_domain_host_killed_under_load_loses_and_duplicates_nothing(
    stack: StackUrls,
) -> None:
    figures = await run_scenario(
        Stack(stack.run_dir),
        stack_settings(stack),
        SCENARIOS["consumers"],
        Options(scans=60, chats=0, users=10, settle_s=120),
    )
    assert not failed(figures), json.dumps(figures, indent=1, default=str)
    assert figures["accepted"] == {"scan": 60, "chat": 0}, figures
    assert figures["final"] == {"scan completed": 60}, figures
    assert figures["healthy_after_s"] is not None, figures
    assert figures["read_models_equal"], figures


async def test_the_models_fault_mix_ends_every_job_or_dead_letters_it_with_its_reason(
    stack: StackUrls,
) -> None:
    figures = await run_scenario(
        Stack(stack.run_dir),
        stack_settings(stack),
        SCENARIOS["model-faults"],
        Options(scans=100, chats=10, users=12, settle_s=180),
    )
    assert not failed(figures), json.dumps(figures, indent=1, default=str)
    assert figures["accepted"] == {"scan": 100, "chat": 10}, figures
    assert figures["duplicates_by_kind"]["stage_calls_after_commit"] == 0, figures
    assert all(reason != "no reason" for reason in figures["dead_lettered"]), figures
    faults = sum(sum(kind["faults"].values()) for kind in figures["model_calls"].values())
    assert faults > 0, figures  # the mix really struck
    assert figures["streams"].keys() <= {"done", "error"}, figures
