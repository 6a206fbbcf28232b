"""The MMT tab's "Save map image for a mask…": each scan's map written as the image to paint
bad pixels on (as `export --mask-template`), named as the masks; errors shown, not raised."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from PyQt6 import QtWidgets
from test_gui_mmt import WAIT_MS, open_view

from gui.mmt_view import MMTView
from smm_daq.analysis.mmt.masks import MaskWarning, NothingMasked, read_mask
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6


@pytest.fixture
def session(tmp_path):
    """A session file with a 31 × 23 scan (a dipole-like bump on a gradient), and the name of
    a grain file (not read: nothing here inverts)."""
    x, y = np.arange(31) * 4 * UM, 50 * UM + np.arange(23) * 4 * UM
    X, Y = np.meshgrid(x, y)
    bump = np.exp(-((X - 60 * UM) ** 2 + (Y - 90 * UM) ** 2) / (20 * UM) ** 2)
    bz = 1e-6 * bump + 1e-9 * X / UM
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=bz, x=x, y=y, height=20 * UM, name="scan"), kind="scan")
    return path, tmp_path / "grains.csv"


def answers(monkeypatch: pytest.MonkeyPatch, *names: str) -> list[tuple[str, str]]:
    """The save dialogs answer `names` in turn; returns what each was asked (title, file
    proposed)."""
    asked: list[tuple[str, str]] = []
    given = iter(names)

    def dialog(_parent, caption, start, _filter):
        asked.append((caption, start))
        return next(given), "PNG images (*.png)"

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", dialog)
    return asked


def click_and_wait(view, qtbot) -> None:
    """The button clicked; once a write was started, until it has ended."""
    view.template_button.click()
    qtbot.waitUntil(lambda: not view.writing_templates, timeout=WAIT_MS)


def test_the_button_writes_the_maps_image_and_names_it_as_the_mask(qtbot, session, tmp_path,
                                                                   monkeypatch):
    path, grains = session
    view = open_view(qtbot, path, grains)
    out = tmp_path / "painted.png"
    asked = answers(monkeypatch, str(out))
    click_and_wait(view, qtbot)
    assert asked == [("Map image for a mask of scan 'scan'", str(tmp_path / "s_scan_mask.png"))]
    m = read_map(path, "scan")
    assert Image.open(out).size == (m.shape[1], m.shape[0])  # one pixel a sensor
    assert view.mask_edit.text() == str(out)
    assert f"Map image for a mask written: {out}. Paint the bad pixels black" in \
        view.status.text()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not read_mask(out, m).any()  # unpainted: nothing excluded
    assert [w.category for w in caught] == [NothingMasked]


def test_a_joint_inversion_gets_one_image_per_scan_on_its_own_grid(qtbot, session, tmp_path,
                                                                  monkeypatch):
    path, grains = session
    scan = read_map(path, "scan")
    again = scan.with_bz(scan.bz[2:-1, 1:-3], x=scan.x[1:-3], y=scan.y[2:-1], name="again")
    write_map_entry(path, again, kind="scan")
    view = open_view(qtbot, path, grains)
    view.more_entries.setText("again")
    view.mask_edit.setText("keep.npy")  # the user's masks: not replaced
    outs = [tmp_path / "first.png", tmp_path / "second"]  # no suffix: .png added
    asked = answers(monkeypatch, *map(str, outs))
    click_and_wait(view, qtbot)
    assert [a[0] for a in asked] == ["Map image for a mask of scan 'scan' (1 of 2)",
                                     "Map image for a mask of scan 'again' (2 of 2)"]
    assert [a[1] for a in asked] == [str(tmp_path / "s_scan_mask.png"),
                                     str(tmp_path / "s_again_mask.png")]
    written = [outs[0], tmp_path / "second.png"]
    for file, m in zip(written, (scan, again), strict=True):
        assert Image.open(file).size == (m.shape[1], m.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("error", MaskWarning)
            warnings.simplefilter("ignore", NothingMasked)
            assert not read_mask(file, m).any()
    assert view.mask_edit.text() == "keep.npy"
    assert "then give them as the mask" in view.status.text()


@pytest.mark.parametrize("second", ["both.png", "both"])
def test_one_file_chosen_for_two_scans_is_refused_writing_nothing(qtbot, session, tmp_path,
                                                                  monkeypatch, second):
    """The same file answered for both scans: the second scan's image replaced the first's
    and the mask field named it as both scans' masks (or, answered without .png, the first
    was written and the second refused naming the command line's --overwrite)."""
    path, grains = session
    scan = read_map(path, "scan")
    write_map_entry(path, scan.with_bz(scan.bz, name="again"), kind="scan")
    view = open_view(qtbot, path, grains)
    view.more_entries.setText("again")
    answers(monkeypatch, str(tmp_path / "both.png"), str(tmp_path / second))
    click_and_wait(view, qtbot)
    assert (f"Map image not written: the map image of scan 'again' and the map image of scan "
            f"'scan' both name '{tmp_path / 'both.png'}'; expected different files") in \
        view.status.text()
    assert view.mask_edit.text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_an_existing_file_reached_by_adding_png_is_refused_in_a_windows_words_writing_nothing(
        qtbot, session, tmp_path, monkeypatch):
    """'second' answered for the second scan where second.png exists (the dialog asked about
    'second' alone): the first scan's image was written, then the second refused in the
    command line's words ('or --overwrite to replace it'), a window having no such option."""
    path, grains = session
    scan = read_map(path, "scan")
    write_map_entry(path, scan.with_bz(scan.bz, name="again"), kind="scan")
    painted = tmp_path / "second.png"
    painted.write_bytes(b"the user's painted mask")
    view = open_view(qtbot, path, grains)
    view.more_entries.setText("again")
    answers(monkeypatch, str(tmp_path / "first.png"), str(tmp_path / "second"))
    click_and_wait(view, qtbot)
    assert view.status.text() == (
        f"Map image not written: {painted} already exists (the name chosen, second, with .png "
        "added); expected another name, or that file chosen by its whole name in the dialog "
        "to replace it")
    assert "--overwrite" not in view.status.text()
    assert painted.read_bytes() == b"the user's painted mask"
    assert not (tmp_path / "first.png").exists() and view.mask_edit.text() == ""
    with qtbot.waitSignal(view.templatesEnded, timeout=WAIT_MS) as ended:
        assert view.save_mask_templates([tmp_path / "first.png", painted])  # chosen whole
    assert ended.args[0], ended.args[1]
    assert Image.open(painted).size == (31, 23)


@pytest.mark.parametrize("second, said", [
    ("nowhere", "no entry 'nowhere'"),
    ("chi", "entry 'chi' is a susceptibility result"),
])
def test_a_scan_that_cannot_be_read_is_refused_before_any_image_is_written(
        qtbot, session, tmp_path, monkeypatch, second, said):
    """The first scan's image was written before the second scan was read and refused."""
    path, grains = session
    scan = read_map(path, "scan")
    write_map_entry(path, scan.with_bz(scan.bz, name="chi"), kind="susceptibility")
    view = open_view(qtbot, path, grains)
    view.more_entries.setText(second)
    answers(monkeypatch, str(tmp_path / "first.png"), str(tmp_path / "second.png"))
    click_and_wait(view, qtbot)
    assert view.status.text().startswith("Map image not written: ")
    assert said in view.status.text() and "written)" not in view.status.text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_a_place_that_cannot_be_written_is_shown_not_raised(qtbot, session, tmp_path,
                                                            monkeypatch):
    path, grains = session
    view = open_view(qtbot, path, grains)
    missing = tmp_path / "no such folder" / "m.png"
    answers(monkeypatch, str(missing))
    click_and_wait(view, qtbot)
    assert (f"Map image not written: the map image is '{missing}'; there is no directory "
            f"{missing.parent}") in view.status.text()
    assert view.mask_edit.text() == ""
    answers(monkeypatch, "")  # the dialog cancelled: nothing written, nothing said
    before = view.status.text()
    click_and_wait(view, qtbot)
    assert view.status.text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_without_a_scan_the_button_says_what_is_missing(qtbot, monkeypatch):
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    asked = answers(monkeypatch)
    click_and_wait(view, qtbot)
    assert asked == []
    assert view.status.text() == "Choose a scan entry (open a session file) first."
    assert not view.save_mask_templates([])
    assert view.mask_edit.text() == ""


def test_the_mask_files_can_be_chosen_in_a_dialog(qtbot, session, tmp_path, monkeypatch):
    """One per scan in order, as the field takes them."""
    path, grains = session
    view = open_view(qtbot, path, grains)
    chosen = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileNames",
                        lambda *_: (chosen, "Masks"))
    view.mask_browse.click()
    assert view.mask_edit.text() == ", ".join(chosen)


def test_the_images_are_checked_and_written_off_the_windows_thread(qtbot, session, tmp_path,
                                                                   monkeypatch):
    """A folder on a slow share: the file names are checked, the scan read and the image
    written in a worker (before: on the window's thread, frozen meanwhile), the button
    disabled and a second write refused until it has ended, the status saying so."""
    import threading

    from scan_gate import Held

    from smm_daq.analysis import mask_template

    path, grains = session
    view = open_view(qtbot, path, grains)
    held = Held(mask_template.write_mask_template)
    monkeypatch.setattr(mask_template, "write_mask_template", held)
    out = tmp_path / "painted.png"
    with qtbot.waitSignal(view.templatesEnded, timeout=WAIT_MS) as ended:
        assert view.save_mask_templates([out])
        held.wait_entered()
        assert view.status.text() == "Writing the map image for a mask…"
        assert not view.template_button.isEnabled()
        assert not view.save_mask_templates([tmp_path / "other.png"])
        held.go.set()
    assert ended.args[0] and ended.args[1] == view.status.text()
    assert view.status.text().startswith(f"Map image for a mask written: {out}.")
    assert held.threads == [held.threads[0]] and held.threads[0] is not threading.main_thread()
    assert view.template_button.isEnabled() and view.mask_edit.text() == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["painted.png", "s.h5"]


def test_names_holding_commas_are_read_whole_and_written_in_quotes(qtbot, session, tmp_path,
                                                                    monkeypatch):
    """A scan and mask files named with a comma (legal everywhere): the boxes split them in
    two. Quoted, each is one name: each image is of its own scan's grid, the mask box names
    them so that they read back, and text that is no list is said."""
    from gui.name_lists import joined, names

    path, grains = session
    scan = read_map(path, "scan")
    again = scan.with_bz(scan.bz[1:, 2:], x=scan.x[2:], y=scan.y[1:], name='again, "2"')
    write_map_entry(path, again, kind="scan")
    view = open_view(qtbot, path, grains)
    view.more_entries.setText('  "again, ""2""" ,')
    outs = [tmp_path / "first, a.png", tmp_path / '"second", b.png']
    answers(monkeypatch, *map(str, outs))
    click_and_wait(view, qtbot)
    assert "Map images for a mask written" in view.status.text()
    for out, m in zip(outs, (scan, again), strict=True):
        assert Image.open(out).size == (m.shape[1], m.shape[0])
    assert view.mask_edit.text() == joined(map(str, outs))
    assert names(view.mask_edit.text()) == list(map(str, outs))
    view.more_entries.setText("")
    assert not view.run()  # the two masks named are two, for one scan
    assert view.status.text().startswith("2 masks for 1 scans")
    assert view.lists_note.isHidden()
    view.more_entries.setText('"again, 2')
    assert view.lists_note.isVisibleTo(view)
    assert view.lists_note.text() == ("Joint entries: the quote opened before 'again, 2' is "
                                      "not closed; expected names separated by commas; a name "
                                      "holding a comma, or a double quote at its start, in "
                                      'double quotes ("a, b.png"), a double quote inside '
                                      "doubled")
    assert not view.run()
    assert view.status.text() == view.lists_note.text()
    view.more_entries.setText('"again, 2" x')
    assert "'x' follows the closing quote of 'again, 2'" in view.lists_note.text()


def test_names_the_window_writes_read_back_as_themselves() -> None:
    """What the window writes into a box (`joined`) is read (`names`) as the same names,
    whatever they hold; and text typed the old way, without quotes, reads as it did."""
    from gui.name_lists import joined, names

    tricky = ["a,b.npy", " lead.png", "trail.png ", '"quoted".npy', 'in"side.png', "none",
              'C:\\masks\\x, "y".png', "é ü.json"]
    assert names(joined(tricky)) == tricky
    assert names("bad.npy, shapes.json,, none ,") == ["bad.npy", "shapes.json", "none"]
