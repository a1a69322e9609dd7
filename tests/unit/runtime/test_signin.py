"""The gateway's memory of ext-authz's allows: short, bounded, never a refusal."""

from runtime.signin import Decisions


def test_an_allow_lasts_its_ttl_and_no_longer() -> None:
    now = [100.0]
    decisions = Decisions(ttl_s=5.0, clock=lambda: now[0])
    assert not decisions.allowed("a")
    decisions.allow("a")
    now[0] += 4.9
    assert decisions.allowed("a")
    now[0] += 0.2
    assert not decisions.allowed("a")
    assert not decisions.allowed("a")  # and it was forgotten, not kept


def test_past_its_size_the_oldest_allow_is_forgotten_first() -> None:
    decisions = Decisions(ttl_s=60.0, size=2)
    for jti in ("a", "b", "c"):
        decisions.allow(jti)
    assert [decisions.allowed(j) for j in ("a", "b", "c")] == [False, True, True]


def test_a_ttl_of_zero_remembers_nothing() -> None:
    decisions = Decisions(ttl_s=0.0)
    decisions.allow("a")
    assert not decisions.allowed("a")
