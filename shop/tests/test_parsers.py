"""The one JSON parser of the API and the webhook (``core.parsers``)."""

import pytest

from core.errors import InvalidJSON
from core.parsers import JSON_MAX_DEPTH, has_control_characters, json_parse


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_reads_json_up_to_the_depth_limit():
    assert json_parse(b'{"lines": [{"product": 1, "quantity": 2}]}') == {
        "lines": [{"product": 1, "quantity": 2}]
    }
    assert json_parse(nested(JSON_MAX_DEPTH).encode()) is not None
    assert json_parse('"caf\u00e9 \\u00e9"') == "café é"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (nested(JSON_MAX_DEPTH + 1), "nested deeper"),
        ('{"a": ' * (JSON_MAX_DEPTH + 1) + "1" + "}" * (JSON_MAX_DEPTH + 1), "nested deeper"),
        (nested(200_000), "nested deeper"),  # past the decoder's recursion limit: RecursionError
        (b"\xff\xfe{}", "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        ("", "not valid JSON"),
        ("{'a': 1}", "not valid JSON"),
        ("[NaN]", "not valid JSON"),
        ("[-Infinity]", "not valid JSON"),
        ("[1e999]", "out of range"),
        ("[1" + "0" * 5000 + "]", "not valid JSON"),
        ('["a\\u0000b"]', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('["\\ud800"]', "surrogate"),
        ('["\\udfff x"]', "surrogate"),
    ],
)
def test_refuses_what_the_shop_cannot_read_or_store(data, why):
    with pytest.raises(InvalidJSON, match=why) as error:
        json_parse(data)
    assert error.value.code == "invalid_json"


def test_a_paired_surrogate_escape_is_a_character():
    assert json_parse('["\\ud83d\\ude00"]') == ["\U0001f600"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc-123", False), ("a\x00", True), ("\x1b[0m", True), ("a\x7f", True), ("é ü", False)],
)
def test_control_characters(value, expected):
    assert has_control_characters(value) is expected
