"""Rescoring options: what is refused, and what identifies a run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.rescore.options import (
    Filter,
    InvalidRescore,
    Selection,
    check_budget,
    check_model,
    check_rules_version,
    derive_run_id,
    parse_filters,
    parse_stages,
)
from pipelines.rules.rulebook import RULES_DATA_VERSION, load_rulebook


def test_stages_come_back_in_pipeline_order_and_unknown_ones_are_named() -> None:
    assert parse_stages("answer, vision") == ("vision", "answer")
    assert parse_stages("answer") == ("answer",)
    with pytest.raises(InvalidRescore, match="reward"):
        parse_stages("vision,reward")
    with pytest.raises(InvalidRescore):
        parse_stages(" , ")


def test_filters_are_key_value_pairs_of_known_keys() -> None:
    assert parse_filters(["user=u1", "middle=무색페트병"]) == (
        Filter("middle", "무색페트병"),
        Filter("user", "u1"),
    )
    with pytest.raises(InvalidRescore, match="colour=red"):
        parse_filters(["colour=red"])
    with pytest.raises(InvalidRescore):
        parse_filters(["user"])


def test_an_unknown_model_is_named() -> None:
    assert check_model(None, ("gpt-5.2",)) is None
    assert check_model("gpt-5.2", ("gpt-5.2",)) == "gpt-5.2"
    with pytest.raises(InvalidRescore, match=r"'gpt-9'"):
        check_model("gpt-9", ("gpt-5.2",))


def test_the_rules_version_must_name_the_shipped_rule_book() -> None:
    rules = load_rulebook()
    assert check_rules_version(None, rules) == rules.version
    assert check_rules_version(RULES_DATA_VERSION, rules) == rules.version
    assert check_rules_version(rules.version, rules) == rules.version
    with pytest.raises(InvalidRescore, match=r"'1999\.1'"):
        check_rules_version("1999.1", rules)


@pytest.mark.parametrize("value", [0, -5])
def test_a_budget_of_zero_or_below_is_refused(value: int) -> None:
    with pytest.raises(InvalidRescore, match=r"--budget-rpm"):
        check_budget(value, "--budget-rpm")
    assert check_budget(None, "--budget-rpm") is None
    assert check_budget(60, "--budget-rpm") == 60


def test_the_run_id_follows_what_decides_the_outcome_and_the_selection() -> None:
    since = datetime(2026, 12, 1, tzinfo=UTC)
    base = derive_run_id(("vision", "answer"), None, "v1", Selection(since=since))
    assert base == derive_run_id(("vision", "answer"), None, "v1", Selection(since=since))
    assert base.startswith("rs-")
    others = {
        derive_run_id(("answer",), None, "v1", Selection(since=since)),
        derive_run_id(("vision", "answer"), "gpt-4o", "v1", Selection(since=since)),
        derive_run_id(("vision", "answer"), None, "v2", Selection(since=since)),
        derive_run_id(("vision", "answer"), None, "v1", Selection()),
        derive_run_id(("vision", "answer"), None, "v1", Selection(since=since, limit=5)),
    }
    assert base not in others
    assert len(others) == 5
