"""While an MMT inversion runs, the MMT tab's inputs stay as the run began: what the Session
tab chooses meanwhile (a grain file drawn, the Dragonfly format, the file's maps read again)
and a mask image written are held, said, and applied once the run ends, finished, failed or
cancelled, the user's last word winning. And the Session tab's outlines of a Dragonfly export
are read again when the MMT tab's Dragonfly options change.

These tests fail rather than hang where the behaviour breaks: the inversion waits at a gate
whose wait is bounded (as long as the test's own waits: a gate let go before the test ends
the run would end it early, and the test then waits for an end already come); the fixture
opens it, cancels the run and waits a bounded time for its
end, then closes the window itself (not pytest-qt, which would close it before the fixture's
teardown, the run still held, and the window's question would wait for nobody), every
question and warning of the window answered without a box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scan_gate
from PyQt6 import QtWidgets
from scan_gate import Held
from session_reads import opened
from test_gui_mmt import write_cuboid_session

from gui.main_window import MainWindow
from smm_daq.analysis.mmt import grain_shaping
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import read_map, write_map_entry

WAIT_MS = 300_000  # a finished inversion compiles its kernels: slow on a loaded 2-core machine
ENDINGS = ("finished", "failed", "cancelled")
APPLIED = "Chosen during the inversion, applied now: "


@dataclass
class App:
    """The main window, its MMT inversion to be held where it reads the grain file (`gate`),
    and the session file and grain file it inverts."""

    window: MainWindow
    gate: Held
    path: object
    grains: object
    asked: list[str]

    @property
    def mmt(self):
        return self.window.mmt

    @property
    def session(self):
        return self.window.session


@pytest.fixture
def app(qtbot, settings, monkeypatch, tmp_path):
    asked: list[str] = []

    def answered(_parent, _title, text, *_args, **_kwargs):
        asked.append(text)
        return QtWidgets.QMessageBox.StandardButton.Yes

    for box in ("question", "warning", "critical", "information"):
        monkeypatch.setattr(QtWidgets.QMessageBox, box, answered)
    # held as long as the test may take on a loaded machine (its Session tab's reads, its
    # grain reads): not let go on its own before the test ends the run
    monkeypatch.setattr(scan_gate, "WAIT_S", WAIT_MS / 1000)
    gate = Held(grain_shaping.shaped_grains)  # the MMT tab's run imports it as it starts
    monkeypatch.setattr(grain_shaping, "shaped_grains", gate)
    path, grains = write_cuboid_session(tmp_path)
    window = MainWindow(load_profile(), settings, persist=False)
    window.resize(1300, 800)
    window.show()
    try:
        yield App(window, gate, path, grains, asked)
    finally:
        gate.go.set()
        window.mmt.cancel()
        try:
            qtbot.waitUntil(lambda: not window.mmt.running, timeout=WAIT_MS)
        finally:
            window.close()
            window.deleteLater()


def start_held(app: App, qtbot) -> None:
    """The session file open in the Session tab (its maps offered in the MMT tab), then an
    inversion of its 'scan' with the grain file, held at its gate."""
    assert opened(app.session, qtbot, app.path)
    app.mmt.entry.setCurrentText("scan")
    app.mmt.set_grain_file(app.grains)
    assert app.mmt.run(), app.mmt.status.text()
    app.gate.wait_entered()
    assert app.mmt.running


def end(app: App, qtbot, ending: str) -> list:
    """Let the held inversion end as `ending` says: the `finished` signal's arguments."""
    assert app.mmt.running, f"the run ended before the test ended it: {app.mmt.status.text()}"
    if ending == "failed":

        def refused(*_args, **_kwargs):
            raise InputError("the grain file is not what it was")

        app.gate.then = refused
    with qtbot.waitSignal(app.mmt.finished, timeout=WAIT_MS) as done:
        if ending == "cancelled":
            app.mmt.cancel()
        app.gate.go.set()
    assert done.args[0] is (ending == "finished"), done.args
    return done.args


def write_grains(path, x_um: float) -> None:
    path.write_text(f"grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,{x_um},10,-5,10,10,4\n")


def drawn(session, qtbot, path, fmt: str = "cuboids") -> None:
    """A grain file drawn in the Session tab (which names it in the MMT tab)."""
    with qtbot.waitSignal(session.grainsLoaded, timeout=WAIT_MS):
        session.load_grains(path, fmt)


def grains_shown(mmt) -> tuple[str, str]:
    return mmt.grain_edit.text(), mmt.grain_format.currentText()


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_grain_file_drawn_during_an_inversion_is_applied_once_it_ends(
    app, qtbot, tmp_path, ending
):
    other = tmp_path / "other.csv"
    write_grains(other, 20)
    start_held(app, qtbot)
    drawn(app.session, qtbot, other)
    assert grains_shown(app.mmt) == (str(app.grains), "cuboids")  # the run's, locked
    assert not app.mmt.held_note.isHidden()
    assert "Held until the inversion ends" in app.mmt.held_note.text()
    assert "the grain file other.csv (cuboids)" in app.mmt.held_note.text()
    args = end(app, qtbot, ending)
    assert grains_shown(app.mmt) == (str(other), "cuboids")
    assert f"{APPLIED}the grain file other.csv (cuboids)" in app.mmt.status.text()
    assert app.mmt.held_note.isHidden()
    if ending == "finished":  # inverted with the grain file it began with
        assert app.mmt.made["grains"] == str(app.grains)
        assert f"{APPLIED}the grain file other.csv" in args[1]
    assert app.asked == []


def test_a_choice_held_when_the_window_closes_is_not_applied_as_the_run_ends_after(
    app, qtbot, tmp_path
):
    """The window closed during a run (cancelled, its thread left to end): a grain file drawn
    meanwhile is dropped with the window, not applied once the run ends after the close."""
    other = tmp_path / "other.csv"
    write_grains(other, 20)
    start_held(app, qtbot)
    drawn(app.session, qtbot, other)
    assert "the grain file other.csv" in app.mmt.held_note.text()
    assert app.window.close()
    assert app.asked == ["An MMT inversion is running. Cancel it and close?"]
    assert app.mmt.running  # its thread still held: it ends after the close
    with qtbot.waitSignal(app.mmt.finished, timeout=WAIT_MS) as done:
        app.gate.go.set()
    assert done.args == [False, "cancelled"]
    assert grains_shown(app.mmt) == (str(app.grains), "cuboids")
    assert APPLIED not in app.mmt.status.text(), app.mmt.status.text()


@pytest.mark.parametrize(
    "choices",
    [("grain file", "format"), ("format", "grain file"), ("grain file", "format", "grain file")],
)
def test_the_last_of_a_grain_file_and_the_dragonfly_format_chosen_during_a_run_wins(
    app, qtbot, tmp_path, choices
):
    """The Session tab's "Dragonfly options…" sets the MMT tab's format to dragonfly; a grain
    file drawn sets it to its own: whichever the user did last is what the tab shows, a
    choice made again counting from when it was made again."""
    other = tmp_path / "other.csv"
    write_grains(other, 20)
    start_held(app, qtbot)
    for choice in choices:
        if choice == "format":
            app.session.dragonfly_button.click()
        else:
            drawn(app.session, qtbot, other)
    assert grains_shown(app.mmt) == (str(app.grains), "cuboids")
    assert app.mmt.dragonfly.dragonfly_part.isHidden()  # not offered for the run's cuboids
    assert "the grain format dragonfly" in app.mmt.held_note.text()
    end(app, qtbot, "cancelled")
    last = choices[-1]
    assert grains_shown(app.mmt) == (str(other), "dragonfly" if last == "format" else "cuboids")
    assert app.mmt.dragonfly.dragonfly_part.isHidden() is (last != "format")


@pytest.mark.parametrize("ending", ENDINGS)
def test_maps_read_again_during_an_inversion_are_offered_once_it_ends(app, qtbot, tmp_path, ending):
    """The Session tab re-reads the entries after every write, and another file may be opened
    there: the map list, locked, keeps the map the run inverts until it ends."""
    scan = read_map(app.path, "scan")
    write_map_entry(app.path, scan.with_bz(scan.bz, name="again"), kind="scan")
    elsewhere = tmp_path / "t.h5"
    write_map_entry(elsewhere, scan.with_bz(scan.bz, name="elsewhere"), kind="scan")
    start_held(app, qtbot)
    combo = app.mmt.entry
    listed = [combo.itemText(i) for i in range(combo.count())]
    assert listed == ["scan", "again"]
    assert opened(app.session, qtbot, elsewhere)
    assert [combo.itemText(i) for i in range(combo.count())] == listed
    assert combo.currentText() == "scan" and app.mmt.path == app.path
    assert "the maps of t.h5" in app.mmt.held_note.text()
    args = end(app, qtbot, ending)
    assert [combo.itemText(i) for i in range(combo.count())] == ["elsewhere"]
    assert app.mmt.path == elsewhere
    assert f"{APPLIED}the maps of t.h5" in app.mmt.status.text()
    if ending == "finished":
        assert args[1].startswith("Result of 'scan' of s.h5")


def test_a_session_file_given_during_an_inversion_and_deleted_since_is_said_not_applied(
    app, qtbot, tmp_path
):
    """`set_file` reads the file once the run ends: gone by then, the status line says why its
    maps are not offered, not that they were."""
    scan = read_map(app.path, "scan")
    elsewhere = tmp_path / "t.h5"
    write_map_entry(elsewhere, scan.with_bz(scan.bz, name="elsewhere"), kind="scan")
    start_held(app, qtbot)
    app.mmt.set_file(elsewhere)
    assert "the maps of t.h5" in app.mmt.held_note.text()
    elsewhere.unlink()
    end(app, qtbot, "cancelled")
    status = app.mmt.status.text()
    assert "Chosen during the inversion, not applied: the maps of t.h5 (" in status, status
    assert "file not found" in status and "applied now" not in status, status
    assert app.mmt.path is None and app.mmt.entry.count() == 0


def test_the_maps_read_again_as_they_are_offered_hold_nothing(app, qtbot, tmp_path):
    """Another file opened, then the inverted file again: the list as offered is the user's
    last word, and nothing is applied at the run's end."""
    scan = read_map(app.path, "scan")
    elsewhere = tmp_path / "t.h5"
    write_map_entry(elsewhere, scan.with_bz(scan.bz, name="elsewhere"), kind="scan")
    start_held(app, qtbot)
    assert opened(app.session, qtbot, elsewhere)
    assert not app.mmt.held_note.isHidden()
    assert opened(app.session, qtbot, app.path)
    assert app.mmt.held_note.isHidden()
    end(app, qtbot, "cancelled")
    assert app.mmt.entry.currentText() == "scan" and app.mmt.path == app.path
    assert APPLIED not in app.mmt.status.text()


def test_a_mask_image_written_during_an_inversion_names_the_mask_once_it_ends(app, qtbot, tmp_path):
    image = tmp_path / "scan_mask.png"
    start_held(app, qtbot)
    with qtbot.waitSignal(app.mmt.templatesEnded, timeout=WAIT_MS) as written:
        assert app.mmt.save_mask_templates([image])
    assert written.args[0], written.args[1]
    assert "the mask field names them once the inversion ends" in written.args[1]
    assert image.exists() and app.mmt.mask_edit.text() == ""
    assert f"the mask {image}" in app.mmt.held_note.text()
    end(app, qtbot, "cancelled")
    assert app.mmt.mask_edit.text() == str(image)
    assert f"{APPLIED}the mask {image}" in app.mmt.status.text()


def write_dragonfly_export(path) -> None:
    """Three grains of 672, 2 and 900 voxels."""
    path.write_text(
        "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
        "Center Of Mass Z (mm);\n"
        "1;672;6.72e-07;0.020;0.015;0.494;\n"
        "2;2;2.0e-09;0.030;0.020;0.495;\n"
        "3;900;9.0e-07;0.500;0.050;0.490;\n",
        encoding="utf-8",
    )


def test_dragonfly_outlines_are_read_again_with_the_options_changed(app, qtbot, tmp_path):
    """A Dragonfly export drawn in the Session tab follows the MMT tab's options as they
    change (a number typed digit by digit: one read once the changes stop coming)."""
    export = tmp_path / "cc.csv"
    write_dragonfly_export(export)
    session, options = app.session, app.mmt.dragonfly
    options.z_top.setValue(500)  # µm, the sample's surface above the grains
    drawn(session, qtbot, export, "dragonfly")
    assert session.outlines_drawn.startswith("Grain outlines: 3 grains of cc.csv")
    reads = []
    session.grainsPlaced.connect(lambda *_args: reads.append(1))
    with qtbot.waitSignal(session.grainsPlaced, timeout=WAIT_MS):
        for value in (7, 70, 700):
            options.min_voxels.setValue(value)
        assert session.placement_timer.isActive()  # read once the typing stops
    assert not session.placement_timer.isActive() and session.grain_reader.pending == 0
    assert reads == [1]
    assert session.outlines_drawn.startswith("Grain outlines: 1 grains of cc.csv")
    assert "min voxels 700" in session.outlines_drawn
    assert np.asarray(session.map_view.outlines.getData()[0]).size > 0


def test_outlines_of_other_formats_are_not_read_again_for_dragonfly_options(app, qtbot, tmp_path):
    grains = tmp_path / "grains.csv"
    write_grains(grains, 20)
    drawn(app.session, qtbot, grains)
    app.mmt.dragonfly.min_voxels.setValue(700)
    assert not app.session.placement_timer.isActive()
