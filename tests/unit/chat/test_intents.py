"""The router's enrichment rules (domain.md §9.1) and the intents table (§9.2)."""

from __future__ import annotations

import pytest

from pipelines.chat.intents import INTENTS, Policy, route
from serve.text import INTENTS as CLASSIFIED


def test_every_classifiable_intent_has_a_budget_and_a_policy() -> None:
    assert set(INTENTS) == set(CLASSIFIED)
    assert INTENTS["general"].policy is Policy.FAIL_CLOSE
    assert INTENTS["character"].policy is Policy.FAIL_OPEN
    assert INTENTS["waste"].required == "disposal_rules"
    assert INTENTS["location"].needs_position


@pytest.mark.parametrize(
    ("intent", "extra", "confidence", "message", "position", "expected"),
    [
        ("waste", [], 0.9, "페트병 버려", False, ["waste", "weather"]),
        ("bulk_waste", [], 0.9, "소파 버려", False, ["bulk_waste", "weather"]),
        (
            "recyclable_price",
            ["location"],
            0.9,
            "캔 얼마",
            True,
            ["recyclable_price", "location", "weather"],
        ),
        ("character", [], 0.9, "캐릭터", True, ["character"]),
        ("weather", [], 0.9, "날씨", True, ["weather"]),
        ("general", [], 0.9, "안녕", True, ["general"]),
        ("general", [], 0.5, "안녕", False, ["general", "web_search"]),
        ("general", [], 0.9, "요즘 바뀐 정책", False, ["general", "web_search"]),
        ("waste", ["weather"], 0.9, "비 오는데 버려도 돼", False, ["waste", "weather"]),
    ],
)
def test_routing_adds_weather_and_web_search_by_the_rules(
    intent: str,
    extra: list[str],
    confidence: float,
    message: str,
    position: bool,
    expected: list[str],
) -> None:
    assert route(intent, extra, confidence, message, position) == expected
