"""Tools answered from the project's own data: disposal rules and recyclable prices.

They need no network, so there is no fake to swap in: the same code runs in tests and production.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pipelines.chat.tools.base import Tool, ToolFailed, ToolRequest
from pipelines.rules import prices
from pipelines.rules.rulebook import RuleBook, RuleMatch
from pipelines.rules.taxonomy import RECYCLABLE, load_taxonomy

MAX_STEPS = 8


def item_in(text: str) -> tuple[str, str, str] | None:
    """``(major, middle, item)`` of the longest taxonomy label the text names."""
    taxonomy = load_taxonomy()
    labels: dict[str, tuple[str, str]] = dict(taxonomy.leaf_items)
    for middle in taxonomy.recyclable_middles:
        labels.setdefault(middle, (RECYCLABLE, middle))
    for major in taxonomy.flat_items:
        labels.setdefault(major, (major, major))
    compact = text.replace(" ", "")
    hits = [label for label in labels if len(label) > 1 and label.replace(" ", "") in compact]
    if not hits:
        return None
    label = max(hits, key=len)
    return (*labels[label], label)


class WasteRules:
    """``disposal_rules``: the rule for the item in the photo (vision) or named in the message.

    It grades its own result: a rule found is ``grade: rule``; none found, it falls back to the
    web search tool (``grade: web``) and, when that fails too, lets the model answer on its own,
    saying so (``grade: plain``)."""

    name = "disposal_rules"

    def __init__(self, rules: RuleBook, web_search: Tool | None = None) -> None:
        self._rules, self._web = rules, web_search

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        match = self._match(request)
        if match is not None:
            return {"grade": "rule", **_rule_facts(match)}
        if self._web is not None:
            try:
                found = await self._web.run(request)
                return {"grade": "web", "web_search": found}
            except ToolFailed:
                pass
        return {
            "grade": "plain",
            "note": "규정에서 찾지 못한 물건이에요: 일반 상식으로만 답합니다.",
        }

    def _match(self, request: ToolRequest) -> RuleMatch | None:
        if request.vision is not None:
            c = request.vision.classification
            found = self._rules.find(
                c.major_category, c.middle_category, request.vision.situation_tags
            )
            if found is not None:
                return found
        named = item_in(request.message)
        return None if named is None else self._rules.find(named[0], named[1])


def _rule_facts(match: RuleMatch) -> dict[str, Any]:
    rule = match.rule
    steps = list(rule.common_steps)
    for group in rule.group_steps.values():
        steps += [s for s in group if s not in steps]
    return {
        "rule_id": rule.rule_id,
        "major_category": match.major_category,
        "middle_category": match.middle_category,
        "steps": steps[:MAX_STEPS],
        "targets": rule.targets[:10],
    }


class RecyclablePrices:
    """``price_context``: surveyed prices of the items the message names, with the month."""

    name = "price_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        answer = prices.quote(request.message)
        if not answer.quotes:
            raise ToolFailed(
                "the message names no surveyed item (캔, 종이, 유리병, 플라스틱, 비닐, 철 …)"
            )
        return {
            "survey_month": answer.survey_month,
            "region": answer.region,
            "unit": answer.unit,
            "source": answer.source,
            "quotes": [asdict(q) for q in answer.quotes],
        }
