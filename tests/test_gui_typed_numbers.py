"""Numbers typed into the window's boxes: a decimal comma, a wrong prefix or unit, a sign or
a thousands separator never sets another value without a word."""

from __future__ import annotations

import pytest
from PyQt6 import QtCore

from gui.instruments_panel import _spin
from gui.typed_numbers import decimal_number, si_number

WAIT_MS = 60_000  # generous: the whole suite shares two cores


def typed(qtbot, box, text: str) -> list[tuple]:
    """Types `text` over `box` and Return; what the box said (clamped, refused, and
    "return" when it told Return on to its button's action)."""
    said: list[tuple] = []
    box.clamped.connect(lambda typed, taken: said.append(("clamped", typed, taken)))
    box.refused.connect(lambda text: said.append(("refused", text)))
    box.returnPressed.connect(lambda: said.append(("return",)))
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, QtCore.Qt.Key.Key_Return)
    return said


@pytest.fixture
def tau(qtbot):
    box = _spin(1e-5, 3e4, 6, " s", 1.0, series=(1, 3))
    qtbot.addWidget(box)
    return box


@pytest.fixture
def field(qtbot):
    box = _spin(-100.0, 100.0, 3, " µT", 7.0)
    qtbot.addWidget(box)
    return box


@pytest.mark.parametrize(("text", "value"), [
    ("0,03", 0.03), ("0,2 s", 0.2), ("30,5m", 0.0305), ("0,300", 0.3), ("30 ms", 0.03),
    ("30u", 3e-5), ("30 µs", 3e-5), ("1e-3", 1e-3), (" 3 ", 3.0)])
def test_a_time_constant_is_taken_as_typed_with_a_decimal_comma_or_prefix(qtbot, tau, text,
                                                                           value):
    """0,03 s was taken as 3 s (the comma dropped as a thousands separator): a time constant
    a hundred times off, without a word."""
    assert typed(qtbot, tau, text) == [("return",)]
    assert tau.value() == pytest.approx(value)


@pytest.mark.parametrize("text", ["5M", "3 V", "-5 ms", "1,000 ms", "1,5,0", "0.5,5", "1e999",
                                  "5 mm", "abc"])
def test_a_time_constant_not_understood_is_refused_and_the_setting_kept(qtbot, tau, text):
    """5M (shift held over m) was 5 s and 3 V was 3 s (the keystroke Qt found wrong dropped,
    leaving another number); -5 ms became the shortest time constant; 1,000 ms may be a
    second or a millisecond. Each is now refused, said, and the setting kept."""
    assert typed(qtbot, tau, text) == [("refused", text)]
    assert tau.value() == 1.0 and tau.text() == "1 s"


def test_an_empty_box_keeps_its_value_without_a_word(qtbot, tau):
    assert typed(qtbot, tau, "") == [("return",)]
    assert tau.value() == 1.0


@pytest.mark.parametrize(("text", "value"), [("2,5", 2.5), ("-0,5", -0.5), ("2.5", 2.5),
                                             ("-12", -12.0), ("1e-3", 1e-3)])
def test_a_field_typed_with_a_decimal_comma_is_that_field(qtbot, field, text, value):
    """2,5 µT was taken as 25 µT."""
    assert typed(qtbot, field, text) == [("return",)]
    assert field.value() == pytest.approx(value)


@pytest.mark.parametrize("text", ["1,000", "2,5,0", "1e400", "2,5.1"])
def test_a_field_not_understood_is_refused_and_the_field_kept(qtbot, field, text):
    """1,000 became 1,00 (1 µT: its last keystroke dropped), 1e400 became 1400 (its e
    dropped), clamped to 100 µT. Refused, Return does not set the field either."""
    assert typed(qtbot, field, text) == [("refused", f"{text} µT")]
    assert field.value() == 7.0


def test_a_field_beyond_its_range_is_still_clamped_and_said(qtbot, field):
    assert typed(qtbot, field, "-200,5") == [("clamped", -200.5, -100.0), ("return",)]
    assert field.value() == -100.0


def test_in_a_decimal_comma_locale_the_box_reads_what_it_shows(qtbot):
    """Where the locale's decimal mark is a comma, the box shows 2,500 µT: that is 2.5, not a
    number refused as maybe a thousand."""
    box = _spin(-100.0, 100.0, 3, " µT", 2.5)
    box.setLocale(QtCore.QLocale(QtCore.QLocale.Language.German,
                                 QtCore.QLocale.Country.Germany))
    qtbot.addWidget(box)
    box.setValue(2.5)
    assert box.text() == "2,500 µT"
    said: list[str] = []
    box.refused.connect(said.append)
    box.setFocus()
    qtbot.keyClick(box, QtCore.Qt.Key.Key_Return)
    assert said == [] and box.value() == 2.5
    for text, value in (("1,000", 1.0), ("0,5", 0.5), ("-3.25", -3.25)):
        assert typed(qtbot, box, text) == [("return",)]
        assert box.value() == pytest.approx(value)


def test_numbers_read_alike_by_the_parsers():
    assert decimal_number("0,5") == 0.5 and decimal_number("1,000") is None
    assert si_number("200 µV", "V") == pytest.approx(2e-4)
    assert si_number("200 uV", "V") == si_number("200u", "V") == pytest.approx(2e-4)
    assert si_number("0,2 mV", "V") == pytest.approx(2e-4)
    assert si_number("200 μV", "V") == pytest.approx(2e-4)  # the Greek mu, which Qt's test
    # keys cannot type
    assert si_number("5 MV", "V") is None and si_number("5 mv", "V") is None


def settled(qtbot, panel) -> None:
    """Waits until the rig's worker has run what was sent before and its answer was shown
    (one worker: answers come back in turn)."""
    done: list[bool] = []
    panel.holder.background.submit(lambda: None, lambda _: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=WAIT_MS)


def test_a_lockin_setting_clamped_or_refused_stays_said_once_the_lockin_answers(window,
                                                                                 qtbot):
    """The clamp's message was wiped by the lock-in's answer (it took the value sent, so
    nothing seemed to be said); a value refused is said, and the lock-in keeps its own."""
    panel = window.instruments
    tau = panel.tau_box
    qtbot.waitUntil(lambda: panel.readings.get("time_constant") is not None, timeout=WAIT_MS)
    before = panel.readings["time_constant"]
    said = typed(qtbot, tau, "5M")
    settled(qtbot, panel)
    assert said == [("refused", "5M")]
    assert panel.message.text().startswith("Time constant: '5M' is not taken (type e.g. ")
    assert panel.message.text().endswith(f"still {tau.say(before)}.")
    settled(qtbot, panel)
    panel.readings = {}
    panel.poll()
    qtbot.waitUntil(lambda: bool(panel.readings), timeout=WAIT_MS)
    assert panel.readings["time_constant"] == pytest.approx(before)
    typed(qtbot, tau, "50000")
    settled(qtbot, panel)
    assert panel.message.text() == ("Time constant: 50000 s is beyond its range (1 µs .. "
                                    "30000 s); 30000 s is used.")


def test_its_own_unit_typed_with_the_number_is_taken(qtbot, field):
    """5 µT typed into a box of µT read "5 µT µT" and was refused."""
    assert typed(qtbot, field, "5 uT") == [("return",)]
    assert field.value() == 5.0


def test_a_field_clamped_stays_said_once_the_field_is_set(window, qtbot):
    """1e9 µT became the coils' largest field, and the ramp's end wiped what was said of
    it: the field applied was not the one typed, without a word."""
    panel = window.instruments
    said = typed(qtbot, panel.field_boxes[1], "1e9")
    settled(qtbot, panel)
    assert said == [("clamped", 1e9, 100.0), ("return",)]
    assert panel.holder.rig.coils.field_setpoint()[1] == pytest.approx(100e-6)
    assert panel.message.text() == ("By: 1e+09 µT is beyond its range (-100 µT .. 100 µT); "
                                    "100 µT is used.")


@pytest.fixture
def mmt_tab(qtbot):
    from gui.mmt_view import MMTView
    from smm_daq.instruments.profile import load_profile

    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.registration.setChecked(True)
    view.dragonfly.crop.setChecked(True)
    return view


@pytest.mark.parametrize(("box", "text", "value"), [
    ("sigma", "0,05", 0.05), ("registration.dx", "1,5", 1.5),
    ("registration.rotation", "-2,5", -2.5), ("dragonfly.saturation", "1e3", 1000.0),
    ("dragonfly.min_voxels", "1,000", 10)])
def test_the_mmt_tabs_numbers_are_read_as_typed_or_refused(qtbot, mmt_tab, box, text, value):
    """σ typed 0,05 µT was 5 µT (uncertainties a hundred times too large), a shift of 1,5 µm
    was 15 µm, -2,5° was 25°, 1e3 kA/m was 13 kA/m, 1,000 voxels were 1000: each without a
    word. Now read as typed, or refused, the value kept and said on the tab's status line."""
    spin = mmt_tab
    for name in box.split("."):
        spin = getattr(spin, name)
    spin.setValue(value if text == "1,000" else spin.value())
    typed(qtbot, spin, text)
    assert spin.value() == pytest.approx(value)
    assert mmt_tab.status.text().startswith(f"'{text}' is not taken") == (text == "1,000")


@pytest.mark.parametrize(("kind", "text"), [("length", "12.500"), ("length", "-1.000 µm"),
                                            ("count", "1.000"), ("count", "1,000")])
def test_in_a_decimal_comma_locale_a_point_that_may_group_thousands_is_refused(qtbot, kind,
                                                                              text):
    """Where the decimal mark is a comma a point groups thousands (Qt's own box read 12.500
    µm as 12500 µm): 12.500 was taken as 12.5, 1.000 points as 1, without a word."""
    from gui.number_boxes import ClampingSpinBox, CountBox

    box = ClampingSpinBox() if kind == "length" else CountBox()
    box.setLocale(QtCore.QLocale(QtCore.QLocale.Language.German,
                                 QtCore.QLocale.Country.Germany))
    qtbot.addWidget(box)
    box.setRange(-100_000, 100_000)
    if kind == "length":
        box.setSuffix(" µm")
    box.setValue(7)
    said: list[str] = []
    box.refused.connect(said.append)
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, QtCore.Qt.Key.Key_Return)
    assert box.value() == 7 and len(said) == 1
    if kind == "length":
        assert "1.000 could be a thousand or 1: type 1000 or 1,0" in box.refusal(said[0])


def test_invert_clicked_from_a_box_takes_no_number_unseen(qtbot, mmt_tab):
    """Invert clicked with the mouse from σ typed 1,000 µT: the box is left as the button is
    pressed, its refusal said on the status line and wiped at once by the run's own word, the
    inversion run with the σ before."""
    mmt_tab.show()
    qtbot.waitExposed(mmt_tab)
    box = mmt_tab.sigma
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "1,000")
    mmt_tab.run_button.setEnabled(True)
    qtbot.mouseClick(mmt_tab.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert mmt_tab.status.text().startswith("'1,000 µT' is not taken"), mmt_tab.status.text()
    assert "not inverted" in mmt_tab.status.text()
    qtbot.mouseClick(mmt_tab.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert mmt_tab.status.text().startswith("Choose a scan entry")
