from collections.abc import Sequence

import pytest

from pipelines.rules.characters import DEFAULT_CHARACTER_CODE, character_for_label
from pipelines.rules.reward import RewardDecision, decide_reward
from pipelines.rules.rulebook import load_rulebook
from pipelines.rules.taxonomy import RECYCLABLE, UNCLASSIFIED, load_taxonomy


def _decide(
    major: str | None = RECYCLABLE,
    middle: str | None = "종이",
    minor: str | None = None,
    *,
    enabled: bool = True,
    rule_found: bool = True,
    insufficiencies: Sequence[str] = (),
) -> RewardDecision:
    return decide_reward(
        enabled=enabled,
        major=major,
        middle=middle,
        minor=minor,
        rule_found=rule_found,
        insufficiencies=insufficiencies,
    )


@pytest.mark.parametrize("middle", tuple(load_taxonomy().recyclable_middles))
def test_every_prepared_recyclable_earns_its_character(middle: str) -> None:
    rule_found = load_rulebook().find(RECYCLABLE, middle) is not None
    decision = _decide(middle=middle, rule_found=rule_found)
    assert decision.granted
    assert decision.reason == "granted"
    assert decision.character == character_for_label(middle)
    assert decision.match_reason == middle


@pytest.mark.parametrize("major", [*load_taxonomy().flat_items, UNCLASSIFIED])
def test_non_recyclable_majors_get_no_reward(major: str) -> None:
    rule_found = load_rulebook().find(major, major) is not None
    assert rule_found is (major != UNCLASSIFIED)
    decision = _decide(major=major, middle=major, rule_found=rule_found)
    assert not decision.granted
    assert decision.reason == "not_recyclable"
    assert decision.character is None
    assert decision.match_reason is None


def test_match_reason_with_minor() -> None:
    decision = _decide(middle="무색페트병", minor="무색페트병(물병)")
    assert decision.match_reason == "무색페트병>무색페트병(물병)"


def test_blank_minor_is_no_minor() -> None:
    assert _decide(minor="  ").match_reason == "종이"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"enabled": False}, "reward_disabled"),
        ({"major": None}, "classification_incomplete"),
        ({"middle": "   "}, "classification_incomplete"),
        ({"rule_found": False}, "rule_not_found"),
        ({"insufficiencies": ["라벨을 떼어 주세요."]}, "insufficiencies_present"),
    ],
)
def test_refusals(kwargs: dict[str, object], reason: str) -> None:
    decision = _decide(**kwargs)  # type: ignore[arg-type]
    assert (decision.granted, decision.reason, decision.character) == (False, reason, None)


def test_blank_insufficiencies_do_not_block() -> None:
    assert _decide(insufficiencies=["", "  "]).granted


def test_unmatched_recyclable_middle_falls_back_to_eco() -> None:
    decision = _decide(middle="유색페트병")
    assert decision.character is not None
    assert decision.character.code == DEFAULT_CHARACTER_CODE
