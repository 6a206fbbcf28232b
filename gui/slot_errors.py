"""Errors raised by the window's own code (a slot, a timer's callback, an event handler, or a
Python thread the window started): reported, and the window goes on.

With Python's own `sys.excepthook`, PyQt6 aborts the whole program (qFatal: SIGABRT, exit 134)
when a slot raises: nothing of the window's close runs, so the rig is left as it was (a field
on), a scan's file as a killed writer leaves it. pyqtgraph, once imported, sets a hook that
only prints, if none is set: a side effect of a plotting library's import, under which the
operator is told nothing and the program exits 0. While the window runs, `reporting_slot_errors`
sets hooks of its own: the traceback goes to stderr, and a box that blocks nothing says what
failed and that the window goes on. One error does not by itself make the rig unsafe: a scan
running goes on. An error from the code that makes the rig safe or closes the window may have
left it unsafe: the box then says to make it safe with `smm-daq safe`.

A timer's slot failing ten times a second opens one box, which counts the repeats; a repeat's
traceback is not printed again (its count is, at 10, 100, 1000 ...). Once the box is closed, a
repeat of an error it showed is told in the status bar only; a new error opens a box again.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from PyQt6 import QtCore, QtWidgets, sip

from smm_daq.instruments.profile import Profile
from smm_daq.instruments.rig import safe_command_hint

# The code that makes the rig safe or closes the window, by module: the functions (qualified
# names) or, for None, all of the module's. Any function whose name says "safe" counts too.
SAFETY_CODE: dict[str, tuple[str, ...] | None] = {
    "gui.main_window": ("MainWindow.closeEvent", "MainWindow.close_on_signal",
                        "MainWindow.close_left_open", "MainWindow._close_answered_yes",
                        "MainWindow._close_beside_the_window"),
    "gui.rig_holder": ("RigHolder.close",),
    "gui.live_scan": ("LiveScan.abort",),
    "gui.instruments_panel": ("InstrumentsPanel.stop_stage", "InstrumentsPanel.zero_field"),
    "gui.recipe_runner": ("RecipeRunner.stop",),
    "gui.recipes_view": ("RecipesView.stop",),
    "gui.close_wait": None,
    "gui.settings_sync": None,
    "smm_daq.acquisition.safe_close": None,
    "smm_daq.acquisition.sequencer": ("Sequencer.abort",),
}
SHOWN_AT_MOST = 5  # different errors listed in the box; the others counted
TITLE = "smm-daq: error"


@dataclass
class Seen:
    """One error, by where it was raised: what it said last, how often, from safety code."""

    text: str
    count: int
    safety: bool


class SlotErrors(QtCore.QObject):
    """The hooks' reports: counted, printed, and shown in one box (in the GUI thread)."""

    _raised = QtCore.pyqtSignal(object)  # the key of an error in `seen`: shown in the GUI thread

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile
        self.count = 0  # errors reported, repeats included
        self.seen: dict[tuple[str, str, int], Seen] = {}
        self.box: QtWidgets.QMessageBox | None = None
        self._in_box: list[tuple[str, str, int]] = []  # the errors the box up lists
        self._told: set[tuple[str, str, int]] = set()  # listed in a box, up or closed
        self._lock = threading.Lock()  # threads report too
        self._raised.connect(self._show)  # queued when a worker thread reports

    def excepthook(self, kind: type[BaseException], value: BaseException,
                   tb: TracebackType | None) -> None:
        """`sys.excepthook`: an error raised by a slot or an event handler (GUI thread)."""
        self.report(kind, value, tb, None)

    def threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        """`threading.excepthook`: a thread ended by an error (SystemExit ends it quietly)."""
        if args.exc_type is SystemExit:
            return
        self.report(args.exc_type, args.exc_value, args.exc_traceback, args.thread)

    def report(self, kind: type[BaseException], value: BaseException | None,
               tb: TracebackType | None, thread: threading.Thread | None) -> None:
        """Count the error, print it (a repeat's count only, now and then), show it."""
        frames = traceback.extract_tb(tb)
        key = ((kind.__qualname__, frames[-1].filename, frames[-1].lineno or 0) if frames
               else (kind.__qualname__, "", 0))
        text = traceback.format_exception_only(kind, value)[-1].strip()
        with self._lock:
            self.count += 1
            seen = self.seen.setdefault(key, Seen(text, 0, False))
            seen.count += 1
            seen.text = text
            seen.safety = seen.safety or _from_safety_code(tb)  # raised there by either path
            count = seen.count
        source = f"thread {thread.name!r}" if thread is not None else "the window's code"
        if count == 1:
            print(f"smm-daq: error in {source} (the window goes on):\n"
                  + "".join(traceback.format_exception(kind, value, tb)).rstrip(),
                  file=sys.stderr, flush=True)
        elif _decade(count):
            print(f"smm-daq: the same error again, {count} times so far: {text}",
                  file=sys.stderr, flush=True)
        self._raised.emit(key)

    def _show(self, key: tuple[str, str, int]) -> None:
        """The box lists the error (opened for one no box has listed yet); a repeat of one a
        closed box listed is told in the window's status bar."""
        window = _main_window()
        if self.box is not None and sip.isdeleted(self.box):  # deleted with its window
            self._closed()
        if self.box is None and key in self._told:
            if window is not None:
                seen = self.seen[key]
                window.statusBar().showMessage(f"Error again ({seen.count} times): {seen.text}; "
                                               "the traceback is on the terminal")
            return
        if key not in self._in_box:
            self._in_box.append(key)
            self._told.add(key)
        if self.box is None:
            self.box = _box(window)
            self.box.finished.connect(self._closed)
            self.box.show()
        self.box.setText(self.text())

    def text(self) -> str:
        """What the box says of the errors it lists."""
        listed = [self.seen[key] for key in self._in_box]
        lines = [seen.text + (f" ({seen.count} times)" if seen.count > 1 else "")
                 for seen in listed[:SHOWN_AT_MOST]]
        if len(listed) > SHOWN_AT_MOST:
            lines.append(f"and {len(listed) - SHOWN_AT_MOST} other errors")
        head = "An error" if len(listed) == 1 and listed[0].count == 1 else "Errors"
        said = [f"{head} in smm-daq's window (the traceback is on the terminal):",
                *lines, ""]
        if any(seen.safety for seen in listed):
            said.append("It came from making the rig safe or from closing the window: the rig "
                        f"may NOT be safe. {safe_command_hint(self.profile)}.")
        else:
            said.append("The window goes on: the rig was left as it was (a scan running goes "
                        "on).")
        said.append("Please report the error; the program will exit with code 1.")
        return "\n".join(said)

    def _closed(self) -> None:
        self.box, self._in_box = None, []


@contextmanager
def reporting_slot_errors(profile: Profile) -> Iterator[SlotErrors]:
    """Within the block, errors the window's code raises (in the GUI thread or in a Python
    thread) are reported by a `SlotErrors`, and the window goes on; the hooks before come
    back afterwards, and how many errors there were is said."""
    errors = SlotErrors(profile)
    before = sys.excepthook, threading.excepthook
    sys.excepthook, threading.excepthook = errors.excepthook, errors.threading_excepthook
    try:
        yield errors
    finally:
        sys.excepthook, threading.excepthook = before
        if errors.box is not None and not sip.isdeleted(errors.box):
            errors.box.close()
        if errors.count:
            print(f"smm-daq: {errors.count} error{'s' if errors.count > 1 else ''} in the "
                  "window's code while it ran (tracebacks above)", file=sys.stderr, flush=True)


def _from_safety_code(tb: TracebackType | None) -> bool:
    """Whether any frame of the traceback runs code of `SAFETY_CODE`."""
    while tb is not None:
        code = tb.tb_frame.f_code
        functions = SAFETY_CODE.get(tb.tb_frame.f_globals.get("__name__", ""), ())
        if functions is None or "safe" in code.co_name or any(
                code.co_qualname == name or code.co_qualname.startswith(f"{name}.<locals>.")
                for name in functions):
            return True
        tb = tb.tb_next
    return False


def _decade(count: int) -> bool:
    """10, 100, 1000, ..."""
    while count and count % 10 == 0:
        count //= 10
    return count == 1


def _main_window() -> QtWidgets.QMainWindow | None:
    """The application's main window shown, if there is one."""
    for widget in QtWidgets.QApplication.topLevelWidgets():
        if isinstance(widget, QtWidgets.QMainWindow) and widget.isVisible():
            return widget
    return None


def _box(parent: QtWidgets.QWidget | None) -> QtWidgets.QMessageBox:
    """A warning that blocks nothing (not modal), deleted once closed, and that does not keep
    the application running once the window has closed."""
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, TITLE, "",
                                QtWidgets.QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("slotErrorBox")
    box.setWindowModality(QtCore.Qt.WindowModality.NonModal)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_QuitOnClose, False)
    return box
