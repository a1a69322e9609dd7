"""The waste taxonomy (domain.md sections 3 and 4): majors, middles, leaf items and situation tags.

The data lives in ``data/taxonomy.json`` and ``data/situation_tags.json``; labels are kept byte for
byte, duplicates included, because the vision model receives them verbatim.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.rules._data import DATA_DIR, read_json

RECYCLABLE = "재활용폐기물"
UNCLASSIFIED = "미분류"


@dataclass(frozen=True)
class Taxonomy:
    """Immutable view of the taxonomy; mappings keep the order of the data files."""

    major_categories: tuple[str, ...]
    recyclable_middles: Mapping[str, tuple[str, ...]]
    flat_items: Mapping[str, tuple[str, ...]]
    tag_groups: Mapping[str, tuple[str, ...]]
    _item_index: Mapping[str, tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_item_index", MappingProxyType(self._build_item_index()))

    def _build_item_index(self) -> dict[str, tuple[str, str]]:
        index: dict[str, tuple[str, str]] = {}
        for middle, items in self.recyclable_middles.items():
            for item in items:
                index.setdefault(item, (RECYCLABLE, middle))
        for major, items in self.flat_items.items():
            for item in items:
                index.setdefault(item, (major, major))
        return index

    @property
    def situation_tags(self) -> tuple[str, ...]:
        """All unique tags in first-seen order (79; ``유리병_깨짐`` appears in two groups)."""
        seen = dict.fromkeys(tag for tags in self.tag_groups.values() for tag in tags)
        return tuple(seen)

    @property
    def leaf_items(self) -> Mapping[str, tuple[str, str]]:
        """Every leaf item (recyclable and flat) -> ``(major, middle)`` of its first occurrence."""
        return self._item_index

    def is_flat(self, major: str) -> bool:
        """True for the six majors whose middle equals the major (not 미분류, 재활용폐기물)."""
        return major in self.flat_items

    def middle_of_item(self, item: str) -> tuple[str, str] | None:
        """Exact leaf item -> ``(major, middle)``; ``None`` if unknown.

        ``식품용기`` is listed under both 플라스틱류 and 발포합성수지; this returns the first
        (플라스틱류). Callers that see the tag ``발포수지_재질`` settle it themselves (see
        ``RuleBook.find``).
        """
        return self._item_index.get(item)


class _TaxonomyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    major_categories: tuple[str, ...]
    recyclable_middles: dict[str, tuple[str, ...]]
    flat_items: dict[str, tuple[str, ...]]


class _TagsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    groups: dict[str, tuple[str, ...]]


@functools.cache
def load_taxonomy() -> Taxonomy:
    """Load and validate the shipped taxonomy once per process.

    Raises ``ValueError`` (pydantic ``ValidationError``) naming the file if the data is malformed.
    """
    try:
        tax = _TaxonomyFile.model_validate(read_json(DATA_DIR / "taxonomy.json"))
        tags = _TagsFile.model_validate(read_json(DATA_DIR / "situation_tags.json"))
    except ValidationError as exc:
        raise ValueError(f"invalid taxonomy data: {exc}") from exc
    return Taxonomy(
        major_categories=tax.major_categories,
        recyclable_middles=MappingProxyType(dict(tax.recyclable_middles)),
        flat_items=MappingProxyType(dict(tax.flat_items)),
        tag_groups=MappingProxyType(dict(tags.groups)),
    )
