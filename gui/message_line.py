"""A tab's message line: a refusal or failure in red, whole; a success in the window's own
colour, one short line, its notes and warnings kept under a Details button.

A subtraction written with a registration's note and warnings had them all on the line, in
red: a paragraph that squeezed the entries table above it to two rows and was cut off.
"""

from __future__ import annotations

import html

from PyQt6 import QtCore, QtWidgets

ERROR_STYLE = "color: #a00000"
WARNED_COLOUR = "#8a5a00"  # a success with warnings: dark amber, not an error's red
WARNED_STYLE = f"color: {WARNED_COLOUR}"
DETAILS_LINES = 6  # the details shown at most this many lines high; more scroll


class MessageLine(QtWidgets.QWidget):
    """`setText` says a refusal or failure (red, whole, wrapped; "" clears the line); `say`
    a success or progress, one line with its details on demand: a "Details" link at its end
    (not a button, which would make the line taller than its text) shows or hides them.
    `detailsShown(height)`: the details box appeared (its height) or went (minus it), for
    the tab to make room for it elsewhere than above it."""

    detailsShown = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = QtWidgets.QLabel("")
        self.line.setWordWrap(True)
        self.line.linkActivated.connect(lambda _link: self.show_details(self.more.isHidden()))
        self.more = QtWidgets.QPlainTextEdit()
        self.more.setReadOnly(True)
        lines = self.more.fontMetrics().lineSpacing() * DETAILS_LINES
        self.more.setMaximumHeight(lines + 2 * self.more.frameWidth() + 8)
        self.more.hide()
        self._layout = QtWidgets.QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.line)
        self._layout.addWidget(self.more)
        self._text = ""
        self.setText("")

    def setText(self, text: str) -> None:  # named as QLabel's, which this line was
        """Say a refusal or failure, whole, in red; "" clears the line."""
        self._set(text, "", ERROR_STYLE)

    def say(self, text: str, details: list[str] | None = None, *, warned: bool = False
            ) -> None:
        """Say a success or progress `text` in the window's colour (dark amber if `warned`),
        each of `details` (notes, warnings) a paragraph under its Details link, and the
        line's tooltip."""
        self._set(text, "\n\n".join(details or []), WARNED_STYLE if warned else "")

    def text(self) -> str:
        """What the line says, without its Details link."""
        return self._text

    def details(self) -> str:
        return self.more.toPlainText()

    def show_details(self, shown: bool) -> None:
        """Show or hide the details (none: nothing to show)."""
        # isHidden, not isVisible: the line's tab out of sight, isVisible is False for a box
        # shown, which then stayed shown, emptied, with no link to hide it
        shown = shown and bool(self.details())
        if shown == self.more.isHidden():
            self.more.setVisible(shown)
            height = self.more.maximumHeight() + self._layout.spacing()
            self.detailsShown.emit(height if shown else -height)
        if self.details():
            link = f'<a href="details">{"Hide details" if shown else "Details"}</a>'
            self.line.setText(f"{html.escape(self._text)} {link}")

    def _set(self, text: str, details: str, style: str) -> None:
        self._text = text
        self.line.setTextFormat(QtCore.Qt.TextFormat.RichText if details
                                else QtCore.Qt.TextFormat.PlainText)
        self.line.setText(text)
        self.line.setStyleSheet(style)
        self.line.setToolTip(details)
        self.more.setPlainText(details)
        self.show_details(not self.more.isHidden())
