"""Disposal rules and prices: answered from the project's own data, no fake needed."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.chat.tools import ToolFailed, ToolRequest
from pipelines.chat.tools.local import RecyclablePrices, WasteRules, item_in
from pipelines.rules.rulebook import load_rulebook


class Web:
    name = "web_search_context"

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls = fail, 0

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        self.calls += 1
        if self.fail:
            raise ToolFailed("search down")
        return {"query": request.message, "results": []}


def test_the_item_named_in_a_message_is_found_longest_first() -> None:
    assert item_in("무색페트병 어떻게 버려?") == ("재활용폐기물", "무색페트병", "무색페트병")
    assert item_in("아무 말") is None


async def test_a_named_item_gets_its_rule() -> None:
    web = Web()
    facts = await WasteRules(load_rulebook(), web).run(ToolRequest("무색페트병 버리는 법", "waste"))
    assert facts["grade"] == "rule"
    assert facts["rule_id"] == "재활용폐기물_무색페트병"
    assert facts["steps"]
    assert web.calls == 0


@pytest.mark.parametrize(("web_fails", "grade"), [(False, "web"), (True, "plain")])
async def test_no_rule_falls_back_to_the_web_then_to_the_model_alone(
    web_fails: bool, grade: str
) -> None:
    web = Web(fail=web_fails)
    facts = await WasteRules(load_rulebook(), web).run(ToolRequest("이건 뭐지", "waste"))
    assert facts["grade"] == grade
    assert web.calls == 1


async def test_prices_carry_their_survey_month_and_region() -> None:
    facts = await RecyclablePrices().run(
        ToolRequest("서울에서 캔 시세 얼마야?", "recyclable_price")
    )
    assert facts["survey_month"] == "2025-01"
    assert facts["region"] == "수도권"
    assert [q["item"] for q in facts["quotes"]] == ["철캔", "알루미늄캔"]


async def test_a_message_without_a_surveyed_item_is_a_tool_failure() -> None:
    with pytest.raises(ToolFailed):
        await RecyclablePrices().run(ToolRequest("얼마야?", "recyclable_price"))
