"""The chat domain's rules: limits with messages that say what to do, titles, cursors."""

from __future__ import annotations

import pytest

from domains.chat.model import (
    checked_location,
    checked_message,
    checked_title,
    decode_cursor,
    encode_cursor,
    preview_of,
    title_from,
)
from eco2.errors import InvalidInput


def test_a_message_must_not_be_blank_or_over_the_limit_and_the_refusal_names_it() -> None:
    assert checked_message(" 안녕 ", 10) == " 안녕 "
    with pytest.raises(InvalidInput) as empty:
        checked_message("   ", 10)
    assert empty.value.code == "empty_message"
    with pytest.raises(InvalidInput) as long:
        checked_message("가" * 11, 10)
    assert long.value.code == "message_too_long"
    assert "10 characters" in long.value.message


@pytest.mark.parametrize(("lat", "lon"), [(91, 0), (-91, 0), (0, 181), (0, -180.5)])
def test_coordinates_out_of_range_are_refused(lat: float, lon: float) -> None:
    with pytest.raises(InvalidInput) as refused:
        checked_location(lat, lon)
    assert refused.value.code == "bad_location"


def test_titles_are_trimmed_and_bounded() -> None:
    assert checked_title("  페트병   질문 ", 20) == "페트병 질문"
    with pytest.raises(InvalidInput):
        checked_title("  ", 20)
    with pytest.raises(InvalidInput):
        checked_title("가" * 21, 20)
    assert title_from("가" * 30, 10) == "가" * 9 + "…"
    assert preview_of("줄\n바꿈") == "줄 바꿈"


def test_cursors_round_trip_and_anything_else_is_refused() -> None:
    assert decode_cursor(encode_cursor("2026-01-01T00:00:00+00:00", "abc"), 2) == [
        "2026-01-01T00:00:00+00:00",
        "abc",
    ]
    for bad in ("nonsense", encode_cursor("one"), "x" * 500):
        with pytest.raises(InvalidInput):
            decode_cursor(bad, 2)
