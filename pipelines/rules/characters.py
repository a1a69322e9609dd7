"""The 13 collectible characters (domain.md section 8.4), loaded from ``data/characters.json``."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.rules._data import DATA_DIR, read_json

DEFAULT_CHARACTER_CODE = "char-eco"


@dataclass(frozen=True)
class Character:
    """A character; ``match_label`` is the middle class it rewards, ``type`` its sample items."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    code: str
    name: str
    match_label: str
    cdn_code: str
    type: str
    description: str
    dialog: str


class _CharactersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    characters: tuple[Character, ...]


@functools.cache
def load_characters() -> tuple[Character, ...]:
    """All characters in catalogue order, 이코 first; cached per process.

    Raises ``ValueError`` naming the file if the data is malformed.
    """
    try:
        data = _CharactersFile.model_validate(read_json(DATA_DIR / "characters.json"))
    except ValidationError as exc:
        raise ValueError(f"invalid characters.json: {exc}") from exc
    return data.characters


@functools.cache
def _by_label() -> dict[str, Character]:
    return {c.match_label: c for c in load_characters()}


def character_for_label(match_label: str) -> Character | None:
    """The character whose ``match_label`` equals the string exactly (8.2 level 2), or None."""
    return _by_label().get(match_label)


def default_character() -> Character:
    """이코 (``char-eco``), given when no label matches and at onboarding."""
    return next(c for c in load_characters() if c.code == DEFAULT_CHARACTER_CODE)


def image_url(character: Character, cdn_base: str) -> str:
    """``{cdn_base}/character/{cdn_code}.png``; a trailing slash on ``cdn_base`` is tolerated."""
    return f"{cdn_base.rstrip('/')}/character/{character.cdn_code}.png"
