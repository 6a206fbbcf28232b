"""Show saved, the Session tab's Show in MMT tab and Invert (again) replace the MMT result on
show: one in no file is not dropped unasked. As the window's close asks, the tab asks first:
Yes saves it and then goes on, No goes on without saving it, Cancel (the default) does
neither; a result already in the file is replaced unasked."""

from __future__ import annotations

import pytest
from PyQt6 import QtWidgets
from test_gui_mmt import (  # noqa: F401 (fixtures)
    WAIT_MS,
    held_inversion,
    inverted,
    save,
    session,
)

from smm_daq.storage.nexus import list_entries

QUESTION = ("The MMT result of 'scan' of s.h5 is not saved (the MMT tab's Save to file). Save "
            "it before {doing}?\n\nYes saves it, then goes on; No goes on without saving it "
            "(the result is dropped); Cancel keeps it on show and does neither.")
BUTTON = QtWidgets.QMessageBox.StandardButton


@pytest.fixture
def answers(monkeypatch):
    """The questions asked (`asked`) and the answers they get, in turn (`given`)."""
    asked: list[str] = []
    given: list[QtWidgets.QMessageBox.StandardButton] = []

    def answered(_parent, _title, text, buttons, default):
        assert buttons == BUTTON.Yes | BUTTON.No | BUTTON.Cancel and default == BUTTON.Cancel
        asked.append(text)
        return given.pop(0)

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answered)
    return asked, given


def _entries(view) -> list[str]:
    return [e.name for e in list_entries(view.path) if e.kind == "mmt"]


def test_show_saved_asks_before_it_drops_a_result_in_no_file(inverted, qtbot, answers):  # noqa: F811
    view, (asked, given) = inverted, answers
    assert save(view, qtbot, "kept")[0]
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS):
        assert view.run()  # a second result, in no file
    view.set_file(view.path)
    view.saved_entry.setCurrentText("kept")
    fresh = view.result
    given.append(BUTTON.Cancel)
    view.show_saved_button.click()
    assert asked == [QUESTION.format(doing="showing the saved result 'kept'")]
    assert view.result is fresh and view.unsaved and view.shown_entry is None
    given.append(BUTTON.No)
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        view.show_saved_button.click()
    assert ended.args[0], ended.args[1]
    assert view.shown_entry == "kept" and view.unsaved is None
    assert _entries(view) == ["kept"]  # dropped, as answered
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS):
        view.show_saved_button.click()  # a saved result on show: replaced unasked
    assert len(asked) == 2


def test_yes_saves_the_result_then_inverts_again(inverted, qtbot, answers):  # noqa: F811
    view, (asked, given) = inverted, answers
    given.append(BUTTON.Cancel)
    view.run_button.click()
    assert asked == [QUESTION.format(doing="inverting again")] and not view.running
    given.append(BUTTON.Yes)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        view.run_button.click()
    assert done.args[0], done.args[1]
    assert _entries(view) == ["scan_mmt"] and len(asked) == 2
    assert view.unsaved  # the new result, in no file


def test_during_an_inversion_it_asks_yes_or_no_to_dropping_it(
        inverted, held_inversion, qtbot, monkeypatch):  # noqa: F811
    """The result in no file cannot be saved while an inversion runs: Show saved then asks
    whether to go on without it, No (the default) keeping it."""
    view, asked, given = inverted, [], []
    started, release = held_inversion

    def answered(_parent, _title, text, buttons, default):
        assert buttons == BUTTON.Yes | BUTTON.No and default == BUTTON.No
        asked.append(text)
        return given.pop(0)

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answered)
    fresh = view.result
    try:
        assert view.run()
        assert started.wait(WAIT_MS / 1000)
        given.append(BUTTON.No)
        assert not view.show_saved(view.path, "elsewhere")
        assert asked == ["The MMT result of 'scan' of s.h5 is not saved (the MMT tab's Save to "
                         "file), and cannot be while an inversion runs. Go on showing the "
                         "saved result 'elsewhere' without saving it?"]
        assert view.result is fresh and view.unsaved
        given.append(BUTTON.Yes)
        with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
            assert view.show_saved(view.path, "elsewhere")  # read, and refused: no such entry
        assert not ended.args[0] and len(asked) == 2
    finally:
        with qtbot.waitSignal(view.finished, timeout=WAIT_MS):
            view.cancel()
            release.set()


def test_the_session_tabs_show_in_mmt_tab_asks_too(qtbot, session, settings, answers):  # noqa: F811
    """The Session tab's Show in MMT tab replaces the MMT tab's result as Show saved does:
    Cancel keeps the fresh result and the Session tab on show; No shows the saved one."""
    from session_reads import opened, refreshed
    from test_gui_mmt_scale import result_of

    from gui.grain_outlines import grain_segments
    from gui.main_window import MainWindow
    from smm_daq.instruments.profile import load_profile

    path, (asked, given) = session[0], answers
    window = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(window)
    browser, mmt = window.session, window.mmt
    assert opened(browser, qtbot, path)
    mmt._inverting = path  # as `run` sets it: results of this file's scan, in no file
    for seed in (0, 1):
        data, fresh, _ = result_of(3, seed)  # its table as made (no SSR made undetermined)
        mmt._done(([data], fresh, fresh.table(), [], {"command": "smm-daq mmt invert"},
                   grain_segments(fresh.grains), ""))
        if seed == 0:
            assert save(mmt, qtbot, "kept")[0]
    assert refreshed(browser, qtbot)
    window.show_view("session")
    names = [browser.table.item(r, 0).text() for r in range(browser.table.rowCount())]
    browser.table.selectRow(names.index("kept"))
    given.append(BUTTON.Cancel)
    browser.mmt_button.click()
    assert asked == [QUESTION.format(doing="showing the saved result 'kept'")]
    assert window.tabs.currentWidget() is browser
    assert mmt.result is fresh and mmt.unsaved and mmt.shown_entry is None
    given.append(BUTTON.No)
    with qtbot.waitSignal(mmt.loadEnded, timeout=WAIT_MS) as ended:
        browser.mmt_button.click()
    assert ended.args[0], ended.args[1]
    assert window.tabs.currentWidget() is mmt and len(asked) == 2
    assert mmt.shown_entry == "kept" and mmt.unsaved is None
    assert _entries(mmt) == ["kept"]  # the second result dropped, as answered
