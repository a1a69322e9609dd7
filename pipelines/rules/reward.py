"""The reward gate and character match (domain.md sections 8.1 and 8.2).

Pure policy: it decides whether a scan earns a character and which one. Ownership (8.3) is the
character domain's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.rules.characters import Character, character_for_label, default_character
from pipelines.rules.taxonomy import RECYCLABLE

GRANTED = "granted"
DISABLED = "reward_disabled"
MISSING_CLASSIFICATION = "classification_incomplete"
NOT_RECYCLABLE = "not_recyclable"
NO_RULE = "rule_not_found"
HAS_INSUFFICIENCIES = "insufficiencies_present"


@dataclass(frozen=True)
class RewardDecision:
    """``character`` and ``match_reason`` are set exactly when ``granted``; ``reason`` always."""

    granted: bool
    reason: str
    character: Character | None
    match_reason: str | None


def decide_reward(
    *,
    enabled: bool,
    major: str | None,
    middle: str | None,
    minor: str | None,
    rule_found: bool,
    insufficiencies: Sequence[str],
) -> RewardDecision:
    """Apply the five conditions of 8.1 in order; the first that fails names the refusal.

    Labels are compared after trimming. The character is the one whose ``match_label`` equals
    the middle class, else 이코. ``match_reason`` is ``"{middle}>{minor}"``, or ``"{middle}"``
    when there is no minor.
    """
    major_text, middle_text = (major or "").strip(), (middle or "").strip()
    refusal = _refusal(enabled, major_text, middle_text, rule_found, insufficiencies)
    if refusal is not None:
        return RewardDecision(granted=False, reason=refusal, character=None, match_reason=None)
    character = character_for_label(middle_text) or default_character()
    minor_text = (minor or "").strip()
    match_reason = f"{middle_text}>{minor_text}" if minor_text else middle_text
    return RewardDecision(
        granted=True, reason=GRANTED, character=character, match_reason=match_reason
    )


def _refusal(
    enabled: bool, major: str, middle: str, rule_found: bool, insufficiencies: Sequence[str]
) -> str | None:
    if not enabled:
        return DISABLED
    if not major or not middle:
        return MISSING_CLASSIFICATION
    if major != RECYCLABLE:
        return NOT_RECYCLABLE
    if not rule_found:
        return NO_RULE
    if any(item.strip() for item in insufficiencies):
        return HAS_INSUFFICIENCIES
    return None
