"""The window's close asks before it drops an MMT result that is in no file (an inversion of
the lab's scans takes most of an hour): No keeps the window open, result and all; once the
result is saved, the close asks nothing."""

from __future__ import annotations

import pytest
from PyQt6 import QtWidgets
from test_gui_mmt import WAIT_MS, save, write_cuboid_session

from gui.main_window import MainWindow
from smm_daq.instruments.profile import load_profile


@pytest.fixture
def window(qtbot, settings, monkeypatch, tmp_path):
    """The main window, its MMT tab holding a fresh result of a cuboid scan; every question
    of its close recorded and answered No (`window.asked`)."""
    asked: list[str] = []

    def answered_no(_parent, _title, text, *_args, **_kwargs):
        asked.append(text)
        return QtWidgets.QMessageBox.StandardButton.No

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answered_no)
    w = MainWindow(load_profile(), settings, persist=False)
    w.asked = asked
    w.show()
    path, grains = write_cuboid_session(tmp_path)
    w.mmt.set_file(path)
    w.mmt.set_grain_file(grains)
    with qtbot.waitSignal(w.mmt.finished, timeout=WAIT_MS) as done:
        assert w.mmt.run()
    assert done.args[0], done.args[1]
    yield w
    w.asked.clear()
    w.mmt.unsaved = None  # closed unasked, whatever the test left
    w.close()
    w.deleteLater()


def test_closing_with_an_unsaved_mmt_result_asks_and_once_saved_does_not(window, qtbot):
    assert not window.close()  # answered No
    assert window.asked == ["The MMT result of 'scan' of s.h5 is not saved (the MMT tab's Save "
                            "to file). Close without saving it?"]
    assert window.isVisible() and not window.closing and window.mmt.result is not None
    window.asked.clear()
    assert save(window.mmt, qtbot)[0]
    assert window.close()
    assert window.asked == []


def test_the_question_of_a_running_inversion_names_the_result_not_saved(window, qtbot):
    """A second inversion running while the first's result is in no file: the one question
    the close asks (its Yes cancels the run and closes) says that result is dropped too."""
    assert window.mmt.run()
    assert not window.close()  # answered No: the run goes on
    assert window.asked == ["An MMT inversion is running. Cancel it and close?\n\nThe MMT "
                            "result of 'scan' of s.h5 is not saved (the MMT tab's Save to "
                            "file): closing drops it."]
    assert window.mmt.running and not window.closing
    with qtbot.waitSignal(window.mmt.finished, timeout=WAIT_MS):
        window.mmt.cancel()
