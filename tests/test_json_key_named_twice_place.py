"""Where a JSON key named twice in one object is said to be named the second time: at that
naming, found by the keys' places in the text rather than by a search for the key's spelling,
which would point at the same name in another object (nested objects share key names), inside
another key (`"a\\"x"` ends in `"x"`), or at the start of the text when the key is spelled
with escapes (`"\\u0061"` is `"a"`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smm_daq.analysis.mmt.formats.mpe import read_geometry
from smm_daq.errors import InputError
from smm_daq.text_files import load_json

GEOMETRY = ('"Scan area x-dimension Sx": 1.2e-4, "Scan area y-dimension Sy": 1.2e-4, '
            '"Scan x-step Sdx": 1e-5, "Scan y-step Sdy": 1e-5')


def _second(text: str) -> tuple[str, int, int]:
    """The key, line and column load_json names for the key given twice in `text`."""
    with pytest.raises(json.JSONDecodeError) as caught:
        load_json(text, unique_keys=True)
    key = caught.value.msg.split("'")[1]
    return key, caught.value.lineno, caught.value.colno


@pytest.mark.parametrize(("text", "key", "line", "column"), [
    # the same name in an earlier nested object, then twice in the outer one
    ('{"a": {"x": 1},\n "x": 2,\n "x": 3}', "x", 3, 2),
    # the name once in the outer object, then twice in a nested one
    ('{"x": 0,\n "a": {"x": 1,\n       "x": 2}}', "x", 3, 8),
    # an earlier key ending in the name after an escaped quote
    ('{"a\\"x": 1,\n "x": 2,\n "x": 3}', "x", 3, 2),
    # the second naming spelled with an escape, the name also in a nested object before it
    ('{"a": 1,\n "b": {"a": 2},\n "\\u0061": 3}', "a", 3, 2),
    # the first naming spelled with an escape
    ('{"\\u0061": 1,\n "a": 2}', "a", 2, 2),
    # a string value holding the name and a colon
    ('{"s": "\\"x\\": 1",\n "x": 2,\n "x": 3}', "x", 3, 2),
])
def test_the_second_naming_is_placed_where_it_stands(text: str, key: str, line: int,
                                                     column: int) -> None:
    assert _second(text) == (key, line, column)


def test_a_nested_object_of_the_same_name_is_not_taken_for_the_second_naming_in_a_file(
        tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text('{"Sensor": {"Scan height Hz": 1e-5},\n'
                      f' {GEOMETRY},\n'
                      ' "Scan height Hz": 2e-5,\n'
                      ' "Scan height Hz": 3e-5}\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_geometry(params)
    message = str(caught.value)
    assert "'Scan height Hz' given twice" in message
    assert "line 4, column 2" in message


def test_objects_that_name_no_key_twice_are_read_as_before() -> None:
    text = '{"a": {"x": 1, "y": [{"x": 2}, {}]}, "x": "\\"x\\":", "\\u0062": {}}'
    assert load_json(text, unique_keys=True) == json.loads(text)
