"""Fuzzing the window's number boxes (gui/number_boxes.py, gui/typed_numbers.py) under a
decimal-point and a decimal-comma locale: any text typed and entered is either the number a
person meant (finite, within the box's range, or clamped to it and said) or refused and said
with the text typed, the value before kept; never an exception, NaN or inf. The same text
reads as the same number in every box of the same unit (or is refused by one of them), and a
number with a thousands mark before an exponent (1,000e3: a million, or a thousand?) is
refused, not read 1000 times off.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PyQt6 import QtCore

from gui.instruments_panel import _spin
from gui.number_boxes import CountBox, _without_unit

FAST = settings(max_examples=20, deadline=None, derandomize=True, database=None)
POINT = QtCore.QLocale(QtCore.QLocale.Language.C)
COMMA = QtCore.QLocale(QtCore.QLocale.Language.German, QtCore.QLocale.Country.Germany)
LOCALES = {".": POINT, ",": COMMA}
# what an operator's keyboard types into a number box, weighted to what a number holds (no
# control characters: a line edit takes none)
TYPED = st.text(st.one_of(st.sampled_from(list("0123456789.,eE+- µumsT٣１")),
                          st.characters(codec="utf-8", exclude_categories=("Cc", "Zl", "Zp"))),
                max_size=12)


@pytest.fixture(scope="module")
def boxes(qapp) -> dict:
    """One box of each kind, reused by every example (typing resets what a box holds)."""
    made = {"field": _spin(-100.0, 100.0, 3, " µT", 7.0), "seconds": _spin(0.0, 3e4, 6, " s", 1.0),
            "tau": _spin(1e-5, 3e4, 6, " s", 1.0, series=(1, 3)), "count": CountBox()}
    made["count"].setRange(1, 10000)
    made["count"].setValue(21)
    return made


def enter(box, text: str, locale: QtCore.QLocale) -> list[tuple]:
    """`text` entered into `box` (as Return does: interpretText), under `locale`; what the
    box said. Its reading methods are called directly first, so an exception in them fails
    the test here rather than inside Qt."""
    box.setLocale(locale)
    box.validate(text, 0)
    box.valueFromText(text)
    box.fixup(text)
    said: list[tuple] = []
    box.clamped.connect(lambda typed, taken: said.append(("clamped", typed, taken)))
    box.refused.connect(lambda typed: said.append(("refused", typed)))
    box.lineEdit().setText(text)
    box.interpretText()
    box.clamped.disconnect()
    box.refused.disconnect()
    return said


@FAST
@given(value=st.floats(-1e6, 1e6), digits=st.integers(0, 4), mark=st.sampled_from(".,"),
       exponent=st.booleans(), unit=st.sampled_from(["", " µT", "uT", " uT"]))
def test_a_number_typed_as_a_person_writes_it_is_taken_or_clamped_and_said(
        boxes, value, digits, mark, exponent, unit) -> None:
    box = boxes["field"]
    written = f"{value:.{digits}e}" if exponent else f"{value:.{digits}f}"
    meant = float(written)
    said = enter(box, written.replace(".", mark) + unit, LOCALES[mark])
    taken = min(max(meant, -100.0), 100.0)
    assert box.value() == pytest.approx(taken, abs=5e-4)  # to the box's 3 decimals
    assert said == ([] if taken == meant else [("clamped", meant, taken)])


@FAST
@given(text=TYPED, mark=st.sampled_from(".,"))
@example(text="1,000e3", mark=".")  # read as 1000: a thousands comma before an exponent
@example(text="1.000e0", mark=",")
@example(text="1" * 5000, mark=".")  # int() raised on more than 4300 digits in a count box
@example(text="1,234 ms", mark=",")  # the time constant's own text, 1.234 ms, then refused
def test_any_text_is_a_number_in_range_or_refused_naming_it(boxes, text, mark) -> None:
    typed = {}
    for name, box in boxes.items():
        box.setLocale(LOCALES[mark])
        typed[name] = box._number(text)
        before = box.value()
        said = enter(box, text, LOCALES[mark])
        assert math.isfinite(box.value()) and box.minimum() <= box.value() <= box.maximum()
        if typed[name] is None:
            assert box.value() == before
            # the refusal names the text typed (with the box's unit, which Qt may add)
            assert [_without_unit(s[1], box.suffix()) for s in said] == (
                [_without_unit(text, box.suffix())] if _without_unit(text, box.suffix()) else []
            ), (name, said)
        else:
            assert math.isfinite(typed[name])
            assert not [s for s in said if s[0] == "refused"], (name, said)
        # the box reads back what it shows: its own text is no refusal
        shown = box.lineEdit().text()
        assert enter(box, shown, LOCALES[mark]) == [], (name, shown)
    if None not in (typed["seconds"], typed["tau"]):
        assert typed["seconds"] == typed["tau"]
    for ambiguous in ("1,000e3", "1.000e0"):
        if text == ambiguous:
            assert set(typed.values()) == {None}


def test_a_thousands_mark_before_an_exponent_is_refused_in_every_locale(boxes) -> None:
    for mark, text in ((".", "1,000e3"), (",", "1.000e0"), (".", "-12,500E-3")):
        for name in ("field", "seconds", "tau", "count"):
            said = enter(boxes[name], text, LOCALES[mark])
            assert [s[0] for s in said] == ["refused"] and text in said[0][1], (name, said)


@FAST
@given(value=st.floats(1e-5, 3e4), mark=st.sampled_from(".,"))
@example(value=1.234e-3, mark=",")  # 1.234 ms was suggested under a decimal comma: refused
def test_every_way_a_lockin_box_suggests_to_type_its_value_is_taken(boxes, value, mark
                                                                    ) -> None:
    box = boxes["tau"]
    box.setLocale(LOCALES[mark])
    box.setValue(value)
    suggested = re.split(r", | or ", box.examples())
    assert len(suggested) >= 2, box.examples()
    for text in suggested:
        assert box._number(text) == pytest.approx(box.value(), rel=1e-5), (text, suggested)
