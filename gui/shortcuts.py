"""Window-wide keys for the buttons an operator reaches for in a hurry, usable from any tab:
Start, Pause (again: Resume), Abort the scan, Stop the stage (during a scan: abort it), and
Connect. Each presses its button, so a key does nothing where the button is disabled, and
each button's tooltip names its key."""

from __future__ import annotations

from collections.abc import Callable

from PyQt6 import QtGui, QtWidgets

from gui.instruments_panel import CONNECT_KEY, STOP_KEY, InstrumentsPanel
from gui.scan_tab import ABORT_KEY, PAUSE_KEY, START_KEY, ScanTab


def _press(*buttons: QtWidgets.QAbstractButton) -> Callable[[], None]:
    """Click the first of `buttons` that is enabled, if any."""

    def press() -> None:
        for button in buttons:
            if button.isEnabled():
                button.click()
                return

    return press


def install(window: QtWidgets.QWidget, scan: ScanTab,
            instruments: InstrumentsPanel) -> list[QtGui.QShortcut]:
    """The shortcuts, made children of `window` (active while it is the active window)."""
    keys = [
        (START_KEY, _press(scan.start_button)),
        (PAUSE_KEY, _press(scan.pause_button, scan.resume_button)),
        (ABORT_KEY, _press(scan.abort_button)),
        (STOP_KEY, _press(instruments.stop_button)),
        (CONNECT_KEY, _press(instruments.connect_button)),
    ]
    shortcuts = []
    for key, press in keys:
        shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), window)
        shortcut.activated.connect(press)
        shortcuts.append(shortcut)
    return shortcuts
