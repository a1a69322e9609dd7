"""The pieces of ``eco2 chaos`` that decide a verdict: which scenarios run, what counts as a
failure, which model calls ran twice, and how the work is shared out."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from devtools.chaos.audit import _repeated_calls
from devtools.chaos.faults import SCENARIOS, Struck
from devtools.chaos.load import Accepted, Load, Quota, User
from devtools.chaos.run import _scenario_names, _served_again_s, failed, model_calls_between

ALICE = User("alice", {"Cookie": "s_access=a"})


def _figures(**changes: Any) -> dict[str, Any]:
    return {"scenario": "relay", "lost": 0, "duplicates": 0, **changes}


def test_all_names_every_scenario_and_a_list_keeps_its_order() -> None:
    assert _scenario_names("all") == [*SCENARIOS, "overload", "hostile"]
    assert _scenario_names("relay, gateway") == ["relay", "gateway"]


@pytest.mark.parametrize("value", ["", "relay,nope", "kill-everything"])
def test_an_unknown_scenario_is_refused_with_the_known_ones(value: str) -> None:
    with pytest.raises(typer.BadParameter, match="stage-replica"):
        _scenario_names(value)


@pytest.mark.parametrize(
    ("figures", "verdict"),
    [
        (_figures(), False),
        (_figures(lost=1), True),
        (_figures(duplicates=2), True),
        (_figures(error="RuntimeError: gateway given up"), True),
        ({"scenario": "ai-node", "skipped": "needs the multi-node stack"}, False),
        ({"scenario": "hostile", "failures": [], "operations": 80}, False),
        ({"scenario": "hostile", "failures": [{"check": "not_a_server_error"}]}, True),
        ({"scenario": "hostile", "failures": [], "operations": 0}, True),
        (
            {
                "scenario": "hostile",
                "failures": [],
                "operations": 40,
                "targets": {"auth": {"errors": ["openapi.json: 503"]}},
            },
            True,
        ),
        ({"scenario": "overload", "error": "the probe completed no scan in 15 s"}, True),
    ],
)
def test_a_scenario_fails_on_a_loss_a_duplicate_or_a_fault_that_did_not_heal(
    figures: dict[str, Any], verdict: bool
) -> None:
    assert failed(figures) is verdict


def test_only_this_runs_jobs_count_as_called_twice() -> None:
    mine = [
        Accepted("scan", "job-1", ALICE, "/r", 0.0),
        Accepted("scan", "job-2", ALICE, "/r", 0.0),
    ]
    stats = {
        "calls_by_key": {"job-1:vision": 2, "job-1:answer": 1, "job-2:vision": 1, "old:vision": 3}
    }
    assert _repeated_calls(stats, mine) == {"job-1:vision": 2}


def test_served_again_is_the_first_job_accepted_after_the_fault_that_completed() -> None:
    load = Load("http://api")
    before = Accepted("scan", "a", ALICE, "/r", 9.0, end="done", ended_at=10.5)
    failed_after = Accepted("scan", "b", ALICE, "/r", 10.2, end="error", ended_at=11.0)
    done_after = Accepted("scan", "c", ALICE, "/r", 10.4, end="done", ended_at=13.5)
    load.accepted += [before, failed_after, done_after]
    assert _served_again_s(load, Struck(at=10.0, what="SIGKILL")) == 3.5
    assert _served_again_s(Load("http://api"), Struck(at=10.0, what="SIGKILL")) is None


def test_the_quota_hands_out_each_job_once_and_takes_back_a_refused_one() -> None:
    quota = Quota({"scan": 2, "chat": 0})
    assert [quota.take("scan"), quota.take("scan"), quota.take("scan")] == [True, True, False]
    assert not quota.take("chat")
    quota.give_back("scan")
    assert quota.take("scan")


def test_scenarios_that_kill_nothing_are_the_only_strict_ones() -> None:
    assert [s.name for s in SCENARIOS.values() if s.strict_calls] == ["model-faults"]


def test_model_calls_are_counted_for_the_run_only() -> None:
    before = {
        "kinds": {
            "vision": {"requests": 10, "completed": 9, "faults": {"429": 1, "500": 0}},
            "text": {"requests": 4, "completed": 4, "faults": {"429": 0, "500": 0}},
        }
    }
    after = {
        "kinds": {
            "vision": {"requests": 25, "completed": 21, "faults": {"429": 3, "500": 1}},
            "text": {"requests": 4, "completed": 4, "faults": {"429": 0, "500": 0}},
        }
    }
    assert model_calls_between(before, after) == {
        "vision": {"requests": 15, "completed": 12, "faults": {"429": 2, "500": 1}}
    }
