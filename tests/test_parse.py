"""Integer lists as the sweep prompts and the command line take them: an empty item is a slip
(``1,,2`` was once read as ``1,2`` without a word), refused like any other bad value."""

from __future__ import annotations

import pytest

from latency_tui.core.api import UserError, parse_int_list


@pytest.mark.parametrize("text, expected", [
    ("1,2,4", (1, 2, 4)), (" 1 , 2 ", (1, 2)), ("8", (8,)), ("1,\t2", (1, 2)),
])
def test_well_formed_lists(text, expected):
    assert parse_int_list(text, "batch sizes") == expected


@pytest.mark.parametrize("text", ["1,,2", "1,2,", ",1", ",", " , ", "1, ,2"])
def test_an_empty_item_is_refused_naming_the_field_and_the_text(text):
    with pytest.raises(UserError) as caught:
        parse_int_list(text, "batch sizes")
    message = str(caught.value)
    assert message.startswith("batch sizes: ")
    assert "empty item" in message


@pytest.mark.parametrize("text", ["", "   "])
def test_nothing_at_all_asks_for_a_value(text):
    with pytest.raises(UserError, match="give at least one value"):
        parse_int_list(text, "copies")
