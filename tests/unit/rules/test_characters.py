import pytest

from pipelines.rules.characters import (
    DEFAULT_CHARACTER_CODE,
    character_for_label,
    image_url,
    load_characters,
)
from pipelines.rules.taxonomy import load_taxonomy


def test_thirteen_characters_with_verbatim_codes() -> None:
    characters = load_characters()
    assert len(characters) == 13
    assert characters[0].code == DEFAULT_CHARACTER_CODE
    assert characters[0].name == "이코"
    assert "char-eb7429f0523f" in {c.code for c in characters}
    assert len({c.code for c in characters}) == 13


@pytest.mark.parametrize("middle", tuple(load_taxonomy().recyclable_middles))
def test_every_middle_has_a_character(middle: str) -> None:
    character = character_for_label(middle)
    assert character is not None
    assert character.code != DEFAULT_CHARACTER_CODE
    assert character.type
    assert character.dialog


def test_unknown_label_has_no_character() -> None:
    assert character_for_label("일반종량제폐기물") is None
    assert character_for_label(" 종이") is None


def test_clear_pet_dialog_follows_the_rule() -> None:
    petty = character_for_label("무색페트병")
    assert petty is not None
    assert petty.name == "페티"
    assert "닫아서" in petty.dialog


@pytest.mark.parametrize("base", ["https://cdn.example.com", "https://cdn.example.com/"])
def test_image_url(base: str) -> None:
    electric = character_for_label("전기전자제품")
    assert electric is not None
    assert image_url(electric, base) == "https://cdn.example.com/character/monitor.png"
