"""A number box that takes a number as an operator types it, or says why not.

Qt's own box drops the keystroke it finds wrong and reads a decimal comma as a thousands
separator, leaving another number without a word: 2,5 µT became 25 µT, 1e3 became 13, -5
in a box of counts became 5.
"""

from __future__ import annotations

import re

from PyQt6 import QtCore, QtGui, QtWidgets

from gui.typed_numbers import decimal_number

# digits as many as a float holds: more are read as a float is, beyond any range (int()
# raises on thousands of digits)
_COUNT = re.compile(r"\s*\+?\d{1,300}\s*")


def _without_unit(text: str, suffix: str) -> str:
    """`text` without the box's unit, shown after the number, nor the same unit typed with
    the number ("5 µT" or "5 uT" typed into a box of µT reads "5 µT µT")."""
    unit = suffix.strip()
    text = text.strip().removesuffix(unit).strip()
    for typed in {unit, unit.replace("µ", "u")} - {""}:  # u for µ, as a keyboard types it
        if text.endswith(typed):
            return text.removesuffix(typed).strip()
    return text


class ClampingSpinBox(QtWidgets.QDoubleSpinBox):
    """A number box where a number typed beyond its range becomes the range's end, said by
    `clamped` (Qt's own box refuses the keystroke that crosses it: 20000 typed into a box of
    at most 10000 became 2000, another number, without a word); text it cannot read is
    refused (`refused`), the value before kept. Return or Enter is told by `returnPressed`
    (its button's action) unless it refused what was typed; leaving the box is not."""

    clamped = QtCore.pyqtSignal(float, float)  # typed, taken
    _refusing = False  # the key pressed now had what was typed refused
    refused = QtCore.pyqtSignal(str)  # the text typed, no number the box takes
    returnPressed = QtCore.pyqtSignal()

    def _number(self, text: str) -> float | None:
        if self.specialValueText() and text.strip() == self.specialValueText():
            return self.minimum()  # what the box shows at its minimum ("any")
        return decimal_number(_without_unit(text, self.suffix()), self._decimal_comma())

    def _decimal_comma(self) -> bool:
        """Whether the box's locale writes its numbers with a decimal comma."""
        return self.locale().decimalPoint() == ","

    def __init__(self) -> None:
        super().__init__()
        self.setKeyboardTracking(False)  # a number half typed (the 1 of 1e3) is no value

    def examples(self) -> str:
        """How a value is typed, for a message."""
        return "2.5 or 2,5"

    def _read_as_special(self, number: float | None) -> bool:
        """Whether `number`, typed, is above the box's minimum yet rounds to it at the box's
        decimals, where the minimum means something else (its special text: a σ of 0 is
        "from residual"): taken, it would change what the run does without a word. (One
        below the minimum is beyond the range: clamped, and said so.)"""
        return (number is not None and bool(self.specialValueText())
                and number > self.minimum()
                and round(number, self.decimals()) == self.minimum())

    def refusal(self, text: str) -> str:
        """Why `text`, told by `refused`, was not taken, and what the box holds still."""
        if self._read_as_special(self._number(text)):
            finest = f"{10.0 ** -self.decimals():.{self.decimals()}f}{self.suffix()}"
            return (f"'{text}' is finer than this box's {finest} and would read as "
                    f"'{self.specialValueText()}': type {self.say(self.minimum())} for that, or "
                    f"at least {finest}; still {self.say(self.value())}")
        mark, group = (",", ".") if self._decimal_comma() else (".", ",")
        return (f"'{text}' is not taken (type e.g. {self.examples()}"
                + (f"; 1{group}000 could be a thousand or 1: type 1000 or 1{mark}0"
                   if group in text else "")
                + f"); still {self.say(self.value())}")

    def say(self, value: float) -> str:
        """`value` with its unit, for a message."""
        return f"{value:g}{self.suffix()}"

    def validate(self, text: str | None, pos: int) -> tuple[QtGui.QValidator.State, str, int]:
        """Acceptable: a number within the range. Anything else is kept as typed, for `fixup`
        to clamp or refuse, saying so: Qt's own box dropped the keystroke it found wrong,
        leaving another number (5M became 5 s, 1,000 became 1,00) without a word, and read a
        decimal comma as a thousands separator (2,5 was 25)."""
        number = self._number(text or "")
        slack = 1e-9 * max(abs(self.minimum()), abs(self.maximum()))
        # below a minimum that means something else ("from residual") by less than the
        # slack is below the range too: clamped and said, not taken as that without a word
        lowest = self.minimum() if self.specialValueText() else self.minimum() - slack
        ok = (number is not None and lowest <= number <= self.maximum() + slack
              and not self._read_as_special(number))
        return (QtGui.QValidator.State.Acceptable if ok
                else QtGui.QValidator.State.Intermediate), text or "", pos

    def valueFromText(self, text: str | None) -> float:
        number = self._number(text or "")
        return self.value() if number is None else number

    def fixup(self, text: str | None) -> str:
        typed = self._number(text or "")
        if typed is None or self._read_as_special(typed):  # the value stays, the box says why
            if _without_unit(text or "", self.suffix()):
                self._refusing = True
                self.refused.emit((text or "").strip())
            return self.textFromValue(self.value()) + self.suffix()
        taken = min(max(typed, self.minimum()), self.maximum())
        if taken != typed:
            self.clamped.emit(typed, taken)
        return self.textFromValue(taken) + self.suffix()

    def keyPressEvent(self, event: QtGui.QKeyEvent | None) -> None:
        self._refusing = False
        super().keyPressEvent(event)
        if event is not None and event.key() in (QtCore.Qt.Key.Key_Return,
                                                 QtCore.Qt.Key.Key_Enter) and not self._refusing:
            self.returnPressed.emit()  # not for a typo refused: no move or field from it


class TrimmedSpinBox(ClampingSpinBox):
    """Shows its value without trailing zeros (2.5, not 2.500000), to all its decimals."""

    def textFromValue(self, value: float) -> str:
        text = super().textFromValue(value)
        point = self.locale().decimalPoint()
        return text.rstrip("0").rstrip(point) if point in text else text


class CountBox(QtWidgets.QSpinBox):
    """A box of a whole number (points, lines, samples), read as `ClampingSpinBox` reads its
    number: -5 or 1,5 is not taken as 5 or 15."""

    clamped = QtCore.pyqtSignal(float, float)  # typed, taken
    refused = QtCore.pyqtSignal(str)  # the text typed, no whole number

    def _number(self, text: str) -> int | None:
        body = _without_unit(text, self.suffix())
        if _COUNT.fullmatch(body):
            return int(body)
        # -5: below the range, clamped and said; a number read two ways by the decimal mark
        # (1,000 or 1.000: a thousand, or 1?) is none, in any locale
        readings = {decimal_number(body, comma) for comma in (False, True)}
        number = readings.pop() if len(readings) == 1 else None
        return int(number) if number is not None and number == int(number) else None

    def __init__(self) -> None:
        super().__init__()
        self.setKeyboardTracking(False)

    def examples(self) -> str:
        return "21"

    def refusal(self, text: str) -> str:
        return f"'{text}' is not taken (type a whole number, e.g. {self.examples()}); still " \
               f"{self.say(self.value())}"

    def say(self, value: float) -> str:
        return f"{value:g}{self.suffix()}"

    def validate(self, text: str | None, pos: int) -> tuple[QtGui.QValidator.State, str, int]:
        number = self._number(text or "")
        ok = number is not None and self.minimum() <= number <= self.maximum()
        return (QtGui.QValidator.State.Acceptable if ok
                else QtGui.QValidator.State.Intermediate), text or "", pos

    def valueFromText(self, text: str | None) -> int:
        number = self._number(text or "")
        return self.value() if number is None else number

    def fixup(self, text: str | None) -> str:
        typed = self._number(text or "")
        if typed is None:
            if _without_unit(text or "", self.suffix()):
                self.refused.emit((text or "").strip())
            return self.textFromValue(self.value()) + self.suffix()
        taken = min(max(typed, self.minimum()), self.maximum())
        if taken != typed:
            self.clamped.emit(float(typed), float(taken))
        return self.textFromValue(taken) + self.suffix()
