"""The selection as SQL: every value is a parameter, `none` selects the missing ones."""

from __future__ import annotations

from datetime import UTC, datetime

from pipelines.rescore.cli import child_env
from pipelines.rescore.options import Filter, Selection
from pipelines.rescore.store import _where


def test_filters_and_times_become_parameters_in_order() -> None:
    since = datetime(2026, 12, 1, tzinfo=UTC)
    selection = Selection(
        since=since, filters=(Filter("middle", "무색페트병"), Filter("user", "u'; drop"))
    )
    sql, params = _where(selection, first_param=2)
    assert sql == (
        " AND j.created_at >= $2"
        " AND j.vision_result->'classification'->>'middle_category' = $3"
        " AND j.user_id = $4"
    )
    assert params == [since, "무색페트병", "u'; drop"]


def test_none_selects_scans_without_a_rule_or_reward() -> None:
    sql, params = _where(Selection(filters=(Filter("reward", "none"), Filter("rule", "None"))), 2)
    assert sql == " AND j.reward IS NULL AND j.rule_id IS NULL"
    assert params == []


def test_the_stack_environment_is_used_only_without_a_database_of_our_own() -> None:
    stack = {"ECO2_DB__URL": "postgresql://stack/db", "ECO2_RAY__ADDRESS": "127.0.0.1:1"}
    assert child_env({"PATH": "/bin"}, lambda: stack) == {"PATH": "/bin", **stack}
    own = {"ECO2_DB__URL": "postgresql://own/db"}
    assert child_env(own, lambda: stack) == own
