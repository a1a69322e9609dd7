"""Label normalisation before rule lookup (domain.md section 6.2) [proposal].

Pure functions over the taxonomy and an alias map; ``RuleBook.find`` turns the resolved pair into a
rule with the exact-match logic of section 6.1.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipelines.rules.taxonomy import RECYCLABLE, UNCLASSIFIED, Taxonomy

FOAM_TAG = "발포수지_재질"
FOOD_CONTAINER = "식품용기"
FOAM_MIDDLE = "발포합성수지"

Normalization = dict[str, str]


def clean(text: str) -> str:
    """NFC, trimmed, every whitespace run collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def squash(text: str) -> str:
    """``clean`` with all whitespace removed (folds ``생활계 유해폐기물`` into the key)."""
    return "".join(unicodedata.normalize("NFC", text).split())


@dataclass
class Resolved:
    """A ``(major, middle)`` pair after normalisation, with the log of every change."""

    major: str
    middle: str
    log: list[Normalization] = field(default_factory=list)

    def record(self, before: str, after: str, step: str) -> None:
        if before != after:
            self.log.append({"from": before, "to": after, "step": step})


class Resolver:
    """Applies steps 1-4 of section 6.2, in order, to a raw classification."""

    def __init__(self, taxonomy: Taxonomy, aliases: Mapping[str, str]) -> None:
        self._taxonomy = taxonomy
        self._names = frozenset(taxonomy.major_categories) | frozenset(taxonomy.recyclable_middles)
        self._aliases = {squash(alias): key for alias, key in aliases.items()}
        self._items = {squash(item): place for item, place in taxonomy.leaf_items.items()}

    def resolve(self, major: str | None, middle: str | None, tags: Sequence[str]) -> Resolved:
        """Never raises; unknown labels are returned cleaned but otherwise unchanged."""
        state = Resolved(major="", middle="")
        state.major = self._canonical(major, state)
        state.middle = self._canonical(middle, state)
        self._leaf_item(state, frozenset(clean(t) for t in tags))
        self._recyclable_major(state)
        return state

    def _canonical(self, raw: str | None, state: Resolved) -> str:
        """Steps 1 and 2: whitespace, then spaces removed, then the alias map."""
        if raw is None:
            return ""
        text = clean(raw)
        state.record(raw, text, "whitespace")
        if not text or text in self._names:
            return text
        key = squash(text)
        if key in self._names:
            state.record(text, key, "remove_spaces")
            return key
        alias = self._aliases.get(key)
        if alias is not None:
            state.record(text, alias, "alias")
            return alias
        return text

    def _leaf_item(self, state: Resolved, tags: frozenset[str]) -> None:
        """Step 3: a leaf item given as middle becomes its middle class and sets the major.

        An explicit flat major is kept when the item belongs elsewhere: a class the model judged
        non-recyclable is never promoted to 재활용폐기물 (which could earn a reward).
        """
        if not state.middle or state.middle in self._names:
            return
        key = squash(state.middle)
        place = self._items.get(key)
        if place is None:
            return
        if key == FOOD_CONTAINER and FOAM_TAG in tags:
            place = (RECYCLABLE, FOAM_MIDDLE)
        if self._taxonomy.is_flat(state.major) and place[0] != state.major:
            return
        state.record(state.major, place[0], "leaf_item_major")
        state.record(state.middle, place[1], "leaf_item")
        state.major, state.middle = place

    def _recyclable_major(self, state: Resolved) -> None:
        """Step 4: a recyclable middle (also one given as major) with no usable major."""
        middles = self._taxonomy.recyclable_middles
        if state.major in middles and state.middle in ("", UNCLASSIFIED, state.major):
            state.record(state.middle, state.major, "major_as_middle")
            state.record(state.major, RECYCLABLE, "recyclable_major")
            state.major, state.middle = RECYCLABLE, state.major
            return
        if state.middle in middles and state.major in ("", UNCLASSIFIED):
            state.record(state.major, RECYCLABLE, "recyclable_major")
            state.major = RECYCLABLE
