"""Recyclable prices (domain.md §9.4): the KECO survey table, its synonyms and regions.

Sample data with round, illustrative figures: every quote carries the survey month, and answers
must show it. Loaded once per process from ``data/recyclable_prices.json``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from pipelines.rules._data import DATA_DIR, read_json

NATIONAL = "전국평균"


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    category: str
    item: str
    prices: dict[str, int]


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    survey_month: str
    unit: str
    note: str
    columns: tuple[str, ...]
    regions: dict[str, str]
    items: tuple[_Item, ...]
    synonyms: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Quote:
    category: str
    item: str
    region: str
    price: int


@dataclass(frozen=True)
class PriceAnswer:
    quotes: tuple[Quote, ...]
    region: str
    survey_month: str
    unit: str
    source: str


@functools.cache
def _table() -> _PriceFile:
    return _PriceFile.model_validate(read_json(DATA_DIR / "recyclable_prices.json"))


def region_in(text: str) -> str:
    """The survey column for a region named in ``text`` (전국평균 when none is named)."""
    table = _table()
    found = [(len(name), column) for name, column in table.regions.items() if name in text]
    return max(found)[1] if found else NATIONAL


def items_in(text: str) -> list[str]:
    """The surveyed items ``text`` asks about: item names first, then the synonym shortcuts
    (캔 → 철캔 + 알루미늄캔 …); every item once, in table order."""
    table = _table()
    lowered = text.lower()
    wanted = {i.item for i in table.items if i.item.lower() in lowered}
    if not wanted:
        for word, items in sorted(table.synonyms.items(), key=lambda kv: -len(kv[0])):
            if word in text:
                wanted.update(items)
    return [i.item for i in table.items if i.item in wanted]


def quote(text: str, region: str | None = None) -> PriceAnswer:
    """The prices of the items ``text`` names, in ``region`` (or the one it names)."""
    table = _table()
    column = region or region_in(text)
    wanted = set(items_in(text))
    quotes = tuple(
        Quote(i.category, i.item, column, i.prices[column]) for i in table.items if i.item in wanted
    )
    return PriceAnswer(quotes, column, table.survey_month, table.unit, table.source)
