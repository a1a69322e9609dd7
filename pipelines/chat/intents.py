"""The ten intents (domain.md §9.2): each one's budget, failure policy and required context, and
the router that decides which handlers a message runs (§9.1 enrichment). Plain Python.

Policies, applied by the runner when a handler's tool fails or overruns its budget:

* ``fail-open`` — go on without it; the answer does not need it (character, weather, images);
* ``fallback`` — go on, and the answer says what is missing (location, prices, …); the waste
  handler first falls back on its own (rules → web search → the model alone);
* ``fail-close`` — the job fails with the reason (``general``, whose only tool is the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Policy(StrEnum):
    FAIL_OPEN = "fail-open"
    FALLBACK = "fallback"
    FAIL_CLOSE = "fail-close"


@dataclass(frozen=True)
class IntentSpec:
    name: str
    budget_s: float
    policy: Policy
    required: str | None = None
    """The context the answer cannot do without; when it is missing the answer says so."""
    needs_position: bool = False
    """Asks the user where they are (``needs_input``) when the message came without it."""


INTENTS: dict[str, IntentSpec] = {
    spec.name: spec
    for spec in (
        IntentSpec("waste", 1.0, Policy.FALLBACK, "disposal_rules"),
        IntentSpec("character", 3.0, Policy.FAIL_OPEN),
        IntentSpec("location", 3.0, Policy.FALLBACK, "location_context", needs_position=True),
        IntentSpec("bulk_waste", 10.0, Policy.FALLBACK, "bulk_waste_context"),
        IntentSpec("recyclable_price", 10.0, Policy.FALLBACK),
        IntentSpec("collection_point", 10.0, Policy.FALLBACK, "collection_point_context"),
        IntentSpec("weather", 5.0, Policy.FAIL_OPEN),
        IntentSpec("web_search", 10.0, Policy.FALLBACK),
        IntentSpec("image_generation", 30.0, Policy.FAIL_OPEN),
        IntentSpec("general", 30.0, Policy.FAIL_CLOSE),
    )
}
REAL_TIME_WORDS = ("최신", "뉴스", "정책", "요즘", "올해", "바뀐", "개정")
LOW_CONFIDENCE = 0.75
NO_WEATHER_FOR = frozenset({"weather", "general", "character"})


def route(
    intent: str,
    additional: Sequence[str],
    confidence: float,
    message: str,
    has_position: bool,
) -> list[str]:
    """The handlers to run, main intent first, each once (§9.1 enrichment): waste and
    bulk_waste also ask the weather; a message with a position asks it too unless the intent is
    weather, general or character; a general message of low confidence or about current events
    also searches the web."""
    chosen = [intent, *additional]
    if "waste" in chosen or "bulk_waste" in chosen:
        chosen.append("weather")
    if has_position and intent not in NO_WEATHER_FOR:
        chosen.append("weather")
    if intent == "general" and (
        confidence < LOW_CONFIDENCE or any(word in message for word in REAL_TIME_WORDS)
    ):
        chosen.append("web_search")
    return [name for name in dict.fromkeys(chosen) if name in INTENTS]
