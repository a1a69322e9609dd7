from __future__ import annotations

from cluster.component import Component
from cluster.healing import RestartBudget, Watch, requirements
from eco2.settings import SupervisorSettings

POLICY = SupervisorSettings(
    backoff_s=1.0, backoff_max_s=5.0, restart_limit=4, restart_window_s=100.0, unhealthy_after=3
)


def test_the_wait_doubles_up_to_its_cap_and_the_budget_runs_out_within_the_window() -> None:
    budget = RestartBudget(POLICY)
    delays = []
    for now in (0.0, 1.0, 2.0, 3.0):
        delays.append(budget.next_delay(now))
        budget.spend(now)
    assert delays == [1.0, 2.0, 4.0, 5.0]
    assert budget.next_delay(50.0) is None


def test_restarts_older_than_the_window_stop_counting() -> None:
    budget = RestartBudget(POLICY)
    for now in (0.0, 1.0, 2.0, 3.0):
        budget.spend(now)
    assert budget.next_delay(100.5) == 5.0  # the first left the window: three count (8 s, capped)
    assert budget.next_delay(200.0) == 1.0  # all of them did


def test_a_limit_of_zero_never_restarts() -> None:
    budget = RestartBudget(SupervisorSettings(restart_limit=0))
    assert budget.next_delay(0.0) is None


def test_a_component_counts_as_hung_only_after_consecutive_failed_checks() -> None:
    watch = Watch(POLICY, {"db": set(), "api": {"db"}})
    assert watch.checked("api", "no answer") is None
    assert watch.checked("api", "no answer") is None
    assert watch.checked("api", None) is None  # one good answer starts the count again
    assert watch.checked("api", "no answer") is None
    assert watch.checked("api", "no answer") is None
    reason = watch.checked("api", "no answer")
    assert reason is not None
    assert "3 checks" in reason
    assert "no answer" in reason
    watch.forget("api")
    assert watch.checked("api", "no answer") is None


def test_a_busy_component_failing_its_checks_gets_longer_before_it_counts_as_hung() -> None:
    """Busy: its processes used the CPU between its failed checks (starved, answering late);
    idle: they did not (stopped, deadlocked). A spinning loop is still caught, later."""
    policy = SupervisorSettings(unhealthy_after=3, busy_unhealthy_after=6)
    watch = Watch(policy, {"streams": set()})
    cpu = 10.0
    for _ in range(5):
        cpu += 1.0
        assert watch.checked("streams", "ReadTimeout", cpu) is None
    reason = watch.checked("streams", "ReadTimeout", cpu + 1.0)
    assert reason is not None
    assert "6 checks" in reason
    assert "busy" in reason

    watch.forget("streams")
    frozen = [watch.checked("streams", "ReadTimeout", 42.0) for _ in range(3)]
    assert frozen[:2] == [None, None]
    assert frozen[2] is not None
    assert "idle" in frozen[2]


def test_cpu_time_that_cannot_be_read_counts_as_idle() -> None:
    watch = Watch(POLICY, {"api": set()})
    assert watch.checked("api", "timeout", 1.0) is None
    assert watch.checked("api", "timeout", None) is None
    assert watch.checked("api", "timeout", None) is not None


def test_a_component_waits_while_anything_it_needs_is_failing_or_being_healed() -> None:
    needs = requirements(
        [_part("db"), _part("broker"), _part("domains", "db"), _part("gateway", "domains")]
    )
    assert needs["gateway"] == {"domains", "db"}
    watch = Watch(POLICY, needs)
    assert not watch.waits_on_trouble("gateway", [])
    assert watch.waits_on_trouble("gateway", ["db"])  # indirectly
    assert not watch.waits_on_trouble("gateway", ["broker"])
    watch.checked("db", "refused")  # one failed check is trouble for its dependants
    assert watch.waits_on_trouble("domains", [])
    assert not watch.waits_on_trouble("db", [])


def _part(name: str, *requires: str) -> Component:
    return Component(name=name, url=lambda _: "-", health=lambda _: None, requires=requires)
