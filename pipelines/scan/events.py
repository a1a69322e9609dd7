"""Scan domain events (frozen, past tense, versioned), appended to the scan database's event store.

``RewardGranted`` is the only one that crosses domains (the character domain reacts to it); the
others feed projectors. ``RewardRevoked`` compensates a grant the character domain
rejected. Payloads follow domain.md §10.3.
"""

from __future__ import annotations

from typing import Any

from eco2.events import Event, EventRegistry

AGGREGATE_TYPE = "scan"
registry = EventRegistry()


@registry.register
class ScanRequested(Event):
    event_type = "ScanRequested"
    scan_id: str
    user_id: str
    image_url: str
    user_input: str | None
    model: str


@registry.register
class ScanClassified(Event):
    event_type = "ScanClassified"
    scan_id: str
    image_url: str
    model: str
    classification: dict[str, Any]
    situation_tags: list[str]
    user_input: str
    vision_ms: float


@registry.register
class ScanAnswered(Event):
    event_type = "ScanAnswered"
    scan_id: str
    rule_id: str | None
    rule_matched: bool
    disposal_steps: dict[str, str]
    insufficiencies: list[str]
    user_answer: str
    answer_ms: float


@registry.register
class RewardGranted(Event):
    event_type = "RewardGranted"
    scan_id: str
    user_id: str
    character_id: str
    character_code: str
    character_name: str
    match_label: str
    match_reason: str
    reward_type: str = "character"
    source: str = "scan"


@registry.register
class RewardRevoked(Event):
    """Compensation of ``RewardGranted``: the character domain rejected the grant."""

    event_type = "RewardRevoked"
    scan_id: str
    user_id: str
    character_code: str
    reason: str


@registry.register
class ScanCompleted(Event):
    event_type = "ScanCompleted"
    scan_id: str
    user_id: str
    major_category: str
    middle_category: str
    rule_id: str | None
    rewarded: bool
    rules_version: str
    total_ms: float


@registry.register
class ScanFailed(Event):
    event_type = "ScanFailed"
    scan_id: str
    stage: str
    reason: str
    retriable: bool


@registry.register
class ScanRescored(Event):
    """A batch rescoring run (``pipelines.rescore``) reached another outcome for a completed scan.

    Appended only when the outcome changed: ``changed`` names what (``label``, ``rule``,
    ``reward``); ``previous`` and ``current`` hold ``major_category``, ``middle_category``,
    ``rule_id`` and ``reward`` (a character code or null). It records a finding: the scan's
    stored result is not rewritten, and no character is granted or taken back by it.
    """

    event_type = "ScanRescored"
    scan_id: str
    user_id: str
    run_id: str
    stages: list[str]
    model: str
    rules_version: str
    previous: dict[str, str | None]
    current: dict[str, str | None]
    changed: list[str]
