"""Window-wide keys for the buttons an operator reaches for in a hurry, usable from any tab:
Pause (again: Resume), Abort the scan, Stop the stage (during a scan: abort it), and
Connect. F5 is Start only on the Scan tab, where the plan it starts is in view; on the
Session tab it is that tab's Refresh, as in most programs (pressed there out of habit, a
Start would have moved the stage and ramped the field); on the other tabs it does nothing.
Each presses its button, so a key does
nothing where the button is disabled, and each button's tooltip names its key. Esc stops a
moving stage from the window's dialogs too (`EscapeStops`)."""

from __future__ import annotations

from collections.abc import Callable

from PyQt6 import QtCore, QtGui, QtWidgets

from gui.instruments_panel import CONNECT_KEY, STOP_KEY, InstrumentsPanel
from gui.scan_tab import ABORT_KEY, PAUSE_KEY, START_KEY, ScanTab
from gui.session_browser import REFRESH_KEY, SessionBrowser


def _press(*buttons: QtWidgets.QAbstractButton, in_view: bool = False) -> Callable[[], None]:
    """Click the first of `buttons` that is enabled (and, `in_view`, on the tab shown), if any."""

    def press() -> None:
        for button in buttons:
            if button.isEnabled() and (button.isVisible() or not in_view):
                button.click()
                return

    return press


def install(window: QtWidgets.QWidget, scan: ScanTab, instruments: InstrumentsPanel,
            session: SessionBrowser) -> list[QtGui.QShortcut]:
    """The shortcuts, made children of `window` (active while it is the active window)."""
    assert START_KEY == REFRESH_KEY  # one shortcut: Qt would call two for one key ambiguous
    keys = [
        (START_KEY, _press(scan.start_button, session.refresh_button, in_view=True)),
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


class EscapeStops(QtCore.QObject):
    """Esc stops a moving stage from any window of the application, not only from `window`.

    A window's shortcut works only while that window is active. A dialog over it (a
    question, a warning, a file dialog, Session's and MMT's dialogs, the error box) or a
    popup (a menu, a list opened) takes Esc for itself, a modal one for as long as it is up:
    an operator who sees the sensor heading for the sample could not stop it by key. So an
    event filter of the application's: while the stage may be moving (`moving()`), Esc in
    any other window of the application presses Stop (`stop`; during a scan that aborts it,
    as Esc in the window does) and then closes that window as its Esc would have (a question
    answered by its Esc button, No or Cancel; a dialog rejected; a popup closed; a window
    that ignores Esc, as the close's wait does, left up). While nothing moves, Esc is left to
    the dialog, as before: a stop sent to a stage at rest is not harmless (a PI controller
    records it as error 10, and during a paused scan it would abort the scan).

    A filter rather than dialogs made non-modal: it reaches every dialog, Qt's static ones
    too (QMessageBox.question, QFileDialog.getOpenFileName: modal by design), those of code
    yet to come, and a box that a worker's error opens over a question, with no change to how
    each is answered. The key is taken where it is first delivered (the focused widget): a
    key press goes from there up to its window until a widget takes it, passing the filter
    at each, and some take Esc themselves (a file dialog's list): taken at once, one press is
    one stop, and the window closes however its widgets handle Esc. Native dialogs (the
    platform's file dialog) take their keys outside Qt, so none is used
    (AA_DontUseNativeDialogs)."""

    def __init__(self, window: QtWidgets.QWidget, moving: Callable[[], bool],
                 stop: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self._moving = moving
        self._stop = stop
        QtCore.QCoreApplication.setAttribute(
            QtCore.Qt.ApplicationAttribute.AA_DontUseNativeDialogs)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.installEventFilter(self)  # removed by Qt as this object is deleted

    def eventFilter(self, obj: QtCore.QObject | None, event: QtCore.QEvent | None) -> bool:
        # Every event of the application passes here: the class is tested first, as asking
        # an event its type makes a Python enum (microseconds, tens of thousands of events a
        # window); only a key event can be a key press.
        if (not isinstance(event, QtGui.QKeyEvent)
                or event.type() != QtCore.QEvent.Type.KeyPress
                or not isinstance(obj, QtWidgets.QWidget)):
            return False
        if event.key() != QtCore.Qt.Key.Key_Escape or event.modifiers() not in (
                QtCore.Qt.KeyboardModifier.NoModifier, QtCore.Qt.KeyboardModifier.KeypadModifier):
            return False
        other = obj.window()
        if other is None or other is self._window or not self._window.isVisible() \
                or not self._moving():
            return False  # the window's own Esc shortcut, or the dialog's Esc as ever
        self._stop()
        other.close()
        return True
