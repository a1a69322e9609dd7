"""Settings and strategies shared by the property tests.

Every property runs derandomized (the same examples on every run, so CI never flakes on a new
one) and without the example database (nothing written to the working tree); a failure found
once is kept as an ``@example`` on its property instead.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

storable_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
"""Text PostgreSQL can store (no NUL, no unpaired surrogate)."""

short_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | short_text
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)
"""Any JSON document (finite numbers: ``NaN`` is not JSON)."""

hostile_json = st.sampled_from(
    [
        "[" * 5000 + "]" * 5000,  # deeper than json.loads' recursion limit
        '{"a": ' * 3000 + "1" + "}" * 3000,
        "1" * 5000,  # past the int digit limit: a bare ValueError from json.loads
        '{"user_answer": ' + "9" * 5000 + "}",
        '"\\ud800"',  # an unpaired surrogate escape
        "NaN",
        "-Infinity",
        "\x00",
        "\ufeff{}",
    ]
)
"""JSON-ish texts that trip parsers in ways random text seldom does."""

garbage_text = (
    st.text()
    | st.binary().map(lambda b: b.decode("utf-8", errors="replace"))
    | json_values.map(json.dumps)
    | hostile_json
)
"""Anything a model (or a client) might send instead of what was asked."""
