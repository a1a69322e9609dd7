import json
import shutil
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.rules.rulebook import RULES_DIR, RuleBook, RuleDataError, load_rulebook
from pipelines.rules.taxonomy import RECYCLABLE, UNCLASSIFIED, load_taxonomy

MIDDLES = tuple(load_taxonomy().recyclable_middles)
FLAT_MAJORS = tuple(load_taxonomy().flat_items)


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return load_rulebook()


def test_eighteen_rules_keyed_by_file_stem(book: RuleBook) -> None:
    assert len(book.rules) == 18
    assert set(book.rules) == {p.stem for p in RULES_DIR.glob("*.json")}
    assert book.get("재활용폐기물_종이").display_name == "종이"


def test_display_names_and_categories_are_verbatim(book: RuleBook) -> None:
    assert book.get("재활용폐기물_발포합성수지").display_name == "발포합성수지(스티로폼 등)"
    assert book.get("재활용폐기물_의류및원단").display_name == "의류 및 원단"
    assert book.get("공사장생활폐기물").category == "공사장 생활폐기물"
    assert book.get("생활계유해폐기물").display_name == "생활계 유해폐기물"
    assert book.get("재활용폐기물_종이팩").source_url == ""


def test_only_construction_waste_has_a_destination_map(book: RuleBook) -> None:
    with_map = [r.rule_id for r in book.rules.values() if r.destination_map]
    assert with_map == ["공사장생활폐기물"]
    assert book.get("공사장생활폐기물").group_steps == {}


@pytest.mark.parametrize("middle", MIDDLES)
def test_every_middle_finds_its_rule(book: RuleBook, middle: str) -> None:
    match = book.find(RECYCLABLE, middle)
    assert match is not None
    assert match.rule.rule_id == f"{RECYCLABLE}_{middle}"
    assert (match.major_category, match.middle_category) == (RECYCLABLE, middle)
    assert match.normalizations == []


@pytest.mark.parametrize("major", FLAT_MAJORS)
def test_every_flat_major_finds_its_rule(book: RuleBook, major: str) -> None:
    match = book.find(major, major)
    assert match is not None
    assert match.rule.rule_id == major
    assert match.middle_category == major


def test_unclassified_has_no_rule(book: RuleBook) -> None:
    assert book.find(UNCLASSIFIED, UNCLASSIFIED) is None
    assert book.find(UNCLASSIFIED, None) is None
    assert book.find(None, None) is None


def test_unknown_labels_have_no_rule(book: RuleBook) -> None:
    assert book.find(RECYCLABLE, "우주선") is None
    assert book.find("없는분류", "없는분류") is None
    assert book.find(RECYCLABLE, None) is None


def test_flat_major_ignores_an_odd_middle(book: RuleBook) -> None:
    match = book.find("대형폐기물", "소파")
    assert match is not None
    assert match.rule.rule_id == "대형폐기물"
    assert match.normalizations[-1]["step"] == "flat_middle"


@pytest.mark.parametrize(
    ("major", "middle", "rule_id", "step"),
    [
        ("생활계 유해폐기물", "생활계 유해폐기물", "생활계유해폐기물", "remove_spaces"),
        ("공사장 생활폐기물", "공사장 생활폐기물", "공사장생활폐기물", "remove_spaces"),
        (RECYCLABLE, "의류 및 원단", "재활용폐기물_의류및원단", "remove_spaces"),
        (RECYCLABLE, "스티로폼", "재활용폐기물_발포합성수지", "alias"),
        (RECYCLABLE, "발포합성수지(스티로폼 등)", "재활용폐기물_발포합성수지", "alias"),
        (RECYCLABLE, "페트병", "재활용폐기물_무색페트병", "alias"),
        (RECYCLABLE, "유색페트병", "재활용폐기물_플라스틱류", "alias"),
        (RECYCLABLE, "배터리", "재활용폐기물_전지", "alias"),
        (RECYCLABLE, "가전", "재활용폐기물_전기전자제품", "alias"),
        (RECYCLABLE, "우유팩", "재활용폐기물_종이팩", "leaf_item"),
        (RECYCLABLE, "워셔액용기", "재활용폐기물_플라스틱류", "leaf_item"),
        (" 재활용폐기물\t", "  종이 ", "재활용폐기물_종이", "whitespace"),
    ],
)
def test_normalisation(book: RuleBook, major: str, middle: str, rule_id: str, step: str) -> None:
    match = book.find(major, middle)
    assert match is not None
    assert match.rule.rule_id == rule_id
    assert step in [entry["step"] for entry in match.normalizations]
    assert all(set(entry) == {"from", "to", "step"} for entry in match.normalizations)


def test_nfc_normalisation(book: RuleBook) -> None:
    decomposed = unicodedata.normalize("NFD", "종이")
    assert decomposed != "종이"
    match = book.find(RECYCLABLE, decomposed)
    assert match is not None
    assert match.rule.rule_id == "재활용폐기물_종이"


def test_leaf_item_sets_the_major(book: RuleBook) -> None:
    match = book.find(None, "우유팩")
    assert match is not None
    assert (match.major_category, match.middle_category) == (RECYCLABLE, "종이팩")
    assert {"from": "우유팩", "to": "종이팩", "step": "leaf_item"} in match.normalizations


def test_leaf_item_never_promotes_a_flat_major(book: RuleBook) -> None:
    match = book.find("일반종량제폐기물", "컵")
    assert match is not None
    assert match.rule.rule_id == "일반종량제폐기물"


def test_recyclable_major_with_a_flat_item_moves_to_its_class(book: RuleBook) -> None:
    match = book.find(RECYCLABLE, "사용휴지")
    assert match is not None
    assert match.rule.rule_id == "일반종량제폐기물"


def test_food_container_is_settled_by_the_foam_tag(book: RuleBook) -> None:
    plain = book.find(RECYCLABLE, "식품용기")
    foam = book.find(RECYCLABLE, "식품용기", ["발포수지_재질"])
    assert plain is not None
    assert foam is not None
    assert plain.middle_category == "플라스틱류"
    assert foam.middle_category == "발포합성수지"


@pytest.mark.parametrize("major", [None, "", UNCLASSIFIED])
def test_recyclable_middle_without_major(book: RuleBook, major: str | None) -> None:
    match = book.find(major, "유리병")
    assert match is not None
    assert match.major_category == RECYCLABLE
    assert match.normalizations[-1]["step"] == "recyclable_major"


def test_version_is_stable_and_tracks_content(book: RuleBook, tmp_path: Path) -> None:
    assert book.version.startswith("2026.11.1+")
    assert load_rulebook() is book
    shutil.copytree(RULES_DIR, tmp_path, dirs_exist_ok=True)
    assert load_rulebook(tmp_path).version == book.version
    paper = tmp_path / "재활용폐기물_종이.json"
    data = json.loads(paper.read_text(encoding="utf-8"))
    data["common_steps"].append("추가 단계예요.")
    paper.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert load_rulebook(tmp_path).version != book.version


def _broken_copy(tmp_path: Path, rule_id: str, field: str, value: object) -> None:
    shutil.copytree(RULES_DIR, tmp_path, dirs_exist_ok=True)
    path = tmp_path / f"{rule_id}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data[field] = value
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_schema_error_names_file_and_field(tmp_path: Path) -> None:
    _broken_copy(tmp_path, "재활용폐기물_전지", "common_steps", "한 줄")
    with pytest.raises(RuleDataError, match=r"재활용폐기물_전지\.json: field 'common_steps'"):
        load_rulebook(tmp_path)


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    _broken_copy(tmp_path, "대형폐기물", "배출방법_공통", [])
    with pytest.raises(RuleDataError, match=r"대형폐기물\.json: field '배출방법_공통'"):
        load_rulebook(tmp_path)


def test_rule_id_must_match_file_stem(tmp_path: Path) -> None:
    _broken_copy(tmp_path, "대형폐기물", "rule_id", "가구")
    with pytest.raises(RuleDataError, match=r"대형폐기물\.json: field 'rule_id'"):
        load_rulebook(tmp_path)


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "재활용폐기물_종이.json").write_text("{", encoding="utf-8")
    with pytest.raises(RuleDataError, match=r"재활용폐기물_종이\.json"):
        load_rulebook(tmp_path)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleDataError, match="no rule files"):
        load_rulebook(tmp_path)


_labels = st.one_of(
    st.none(),
    st.text(),
    st.sampled_from([*MIDDLES, *load_taxonomy().major_categories, "식품용기", " 종 이 "]),
)


@given(major=_labels, middle=_labels, tags=st.lists(st.text(), max_size=4))
def test_find_never_raises(major: str | None, middle: str | None, tags: list[str]) -> None:
    match = load_rulebook().find(major, middle, tags)
    assert match is None or match.rule.rule_id in load_rulebook().rules
