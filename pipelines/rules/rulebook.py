"""The 18 disposal rules (domain.md section 5) and their retrieval (section 6).

Rules are JSON documents in ``data/rules/<rule_id>.json``, validated with pydantic on load.
Lookup is the original exact match (6.1) after the project's normalisation (6.2); it never
raises on bad labels and never calls a model.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from pipelines.rules._data import DATA_DIR
from pipelines.rules._retrieval import Resolver
from pipelines.rules.taxonomy import RECYCLABLE, UNCLASSIFIED, Taxonomy, load_taxonomy

RULES_DATA_VERSION = "2026.11.1"
RULES_DIR = DATA_DIR / "rules"
_HASHED_TAXONOMY_FILES = ("taxonomy.json", "situation_tags.json")

Text = Annotated[str, StringConstraints(min_length=1)]


class RuleDataError(ValueError):
    """Rule data that cannot be loaded; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Exclusion(_Frozen):
    """An item the rule does not accept; ``redirect_to`` holds major/middle names (may be empty)."""

    item: Text
    redirect_to: list[Text]
    note: str | None = None


class Rule(_Frozen):
    """One disposal rule in the project JSON shape (domain.md 5.2)."""

    rule_id: Text
    key: Text
    major_category: Text
    middle_category: Text
    category: Text
    display_name: Text
    targets: list[Text]
    target_notes: list[Text]
    item_groups: dict[str, list[Text]]
    common_steps: list[Text]
    group_steps: dict[str, list[Text]]
    destination_map: dict[str, list[Text]]
    exclusions: list[Exclusion]
    icon_steps: list[Text]
    source_url: str | None
    aliases: list[Text]


class RuleMatch(_Frozen):
    """A found rule, the canonical classification it was found for, and the normalisation log."""

    rule: Rule
    major_category: str
    middle_category: str
    normalizations: list[dict[str, str]]


class RuleBook:
    """All loaded rules keyed by ``rule_id``; immutable and safe to share between threads."""

    def __init__(self, rules: Mapping[str, Rule], version: str, taxonomy: Taxonomy) -> None:
        self.version = version
        self.rules: Mapping[str, Rule] = MappingProxyType(dict(rules))
        self._taxonomy = taxonomy
        self._resolver = Resolver(taxonomy, _alias_map(self.rules))
        self._documents = {rule_id: rule.model_dump(mode="json") for rule_id, rule in rules.items()}

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; raises ``KeyError`` if there is none."""
        return self.rules[rule_id]

    def document(self, rule_id: str) -> dict[str, Any]:
        """The rule as a JSON-ready dict, built once at load (callers must not mutate it)."""
        return self._documents[rule_id]

    def find(
        self, major: str | None, middle: str | None, tags: Sequence[str] = ()
    ) -> RuleMatch | None:
        """The rule for a classification, or ``None`` (the answer stage then uses its fallback).

        Labels are normalised first (6.2 steps 1-4, each change logged in ``normalizations``),
        then matched exactly (6.1). 미분류 never has a rule of its own. Never raises.
        """
        state = self._resolver.resolve(major, middle, tags)
        rule = self._lookup(state.major, state.middle)
        if rule is None:
            return None
        state.record(state.middle, rule.middle_category, "flat_middle")
        return RuleMatch(
            rule=rule,
            major_category=rule.major_category,
            middle_category=rule.middle_category,
            normalizations=state.log,
        )

    def _lookup(self, major: str, middle: str) -> Rule | None:
        if major == RECYCLABLE and middle:
            rule = self.rules.get(f"{RECYCLABLE}_{middle}")
            if rule is not None:
                return rule
        if major != UNCLASSIFIED and self._taxonomy.is_flat(major):
            return self.rules.get(major)
        return None


def load_rulebook(path: Path | None = None) -> RuleBook:
    """Load and validate every ``*.json`` rule in ``path`` (default: the shipped rules).

    The default rule book is cached per process. Raises ``RuleDataError`` naming the file and the
    field on any invalid document, and when ``path`` holds no rule at all.
    """
    if path is None:
        return _default_rulebook()
    return _load(path)


@functools.cache
def _default_rulebook() -> RuleBook:
    return _load(RULES_DIR)


def _load(directory: Path) -> RuleBook:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise RuleDataError(f"{directory}: no rule files (*.json) found")
    taxonomy = load_taxonomy()
    blobs: list[tuple[str, bytes]] = []
    rules: dict[str, Rule] = {}
    for file in files:
        raw = file.read_bytes()
        blobs.append((file.name, raw))
        rule = _parse_rule(file, raw)
        _check_placement(file, rule, taxonomy)
        rules[rule.rule_id] = rule
    blobs += [(name, (DATA_DIR / name).read_bytes()) for name in _HASHED_TAXONOMY_FILES]
    return RuleBook(rules, _content_version(blobs), taxonomy)


def _content_version(blobs: Sequence[tuple[str, bytes]]) -> str:
    """``RULES_DATA_VERSION`` plus a short sha256 of the named file contents, in order."""
    digest = hashlib.sha256()
    for name, raw in blobs:
        digest.update(name.encode("utf-8") + b"\0" + len(raw).to_bytes(8, "big") + raw)
    return f"{RULES_DATA_VERSION}+{digest.hexdigest()[:12]}"


def _parse_rule(file: Path, raw: bytes) -> Rule:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RuleDataError(f"{file.name}: not valid UTF-8 JSON: {exc}") from exc
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise RuleDataError(_describe(file, exc)) from exc


def _describe(file: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "<document>"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{file.name}: field '{field}': {first['msg']}{more}"


def _check_placement(file: Path, rule: Rule, taxonomy: Taxonomy) -> None:
    """The id, key and categories must agree with the file name and the taxonomy."""
    expected = _expected_rule_id(rule, taxonomy)
    problems = [
        ("rule_id", rule.rule_id == file.stem, f"must equal the file stem {file.stem!r}"),
        ("key", rule.key == rule.middle_category, "must equal middle_category"),
        ("middle_category", expected is not None, "not a middle class of major_category"),
        ("rule_id", expected in (None, rule.rule_id), f"must be {expected!r}"),
    ]
    for field, ok, message in problems:
        if not ok:
            raise RuleDataError(f"{file.name}: field '{field}': {message}")


def _expected_rule_id(rule: Rule, taxonomy: Taxonomy) -> str | None:
    major, middle = rule.major_category, rule.middle_category
    if major == RECYCLABLE and middle in taxonomy.recyclable_middles:
        return f"{RECYCLABLE}_{middle}"
    if taxonomy.is_flat(major) and middle == major:
        return major
    return None


def _alias_map(rules: Mapping[str, Rule]) -> dict[str, str]:
    """Display names and each rule's ``aliases`` -> the rule's key (a major or middle name)."""
    aliases: dict[str, str] = {}
    for rule in rules.values():
        for alias in (rule.display_name, *rule.aliases):
            if aliases.setdefault(alias, rule.key) != rule.key:
                raise RuleDataError(f"{rule.rule_id}.json: field 'aliases': {alias!r} is ambiguous")
    return aliases


__all__ = [
    "Exclusion",
    "Rule",
    "RuleBook",
    "RuleDataError",
    "RuleMatch",
    "load_rulebook",
]
