"""An image of the sample registered by control points and drawn under the maps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PyQt6 import QtCore, QtWidgets
from session_reads import opened

from gui.image_registration import RegistrationDialog, underlay_transform
from gui.session_browser import SessionBrowser
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry
from smm_daq.storage.optical_entry import read_optical_entry

UM = 1e-6
WAIT_MS = 60_000


def a_map() -> MapData:
    x = np.arange(20) * 5 * UM
    y = np.arange(10) * 5 * UM
    return MapData(bz=np.ones((10, 20)) * 1e-6, x=x, y=y, height=50 * UM,
                   sensor_size=(1e-6, 1e-6), applied_field=np.zeros(3), name="rem",
                   title="remanent")


def test_underlay_transform_puts_pixel_centres_where_the_registration_says() -> None:
    matrix = np.array([[2 * UM, 0.5 * UM, 10 * UM], [-0.3 * UM, 1.5 * UM, 40 * UM]])
    t = underlay_transform(matrix)
    for col, row in [(0, 0), (7, 3), (100, 250)]:
        p = t.map(QtCore.QPointF(col + 0.5, row + 0.5))  # ImageItem pixel centre
        expected = matrix[:, :2] @ [col, row] + matrix[:, 2]
        assert (p.x(), p.y()) == pytest.approx(tuple(expected / UM), abs=1e-9)


def test_dialog_fits_from_clicked_pairs(qtbot) -> None:
    image = np.zeros((50, 80, 3), np.uint8)
    dialog = RegistrationDialog(image, a_map(), image_name="ts.png")
    qtbot.addWidget(dialog)
    assert not dialog.save_button.isEnabled()
    pairs = [((0, 0), (0, 0)), ((79, 0), (79 * 1.2 * UM, 0)), ((0, 49), (0, 49 * 1.2 * UM))]
    for (col, row), (x, y) in pairs[:2]:
        dialog.add_pixel(col, row)
        dialog.add_point(x, y)
    assert dialog.registration is None and "at least 3" in dialog.result.text()
    (col, row), (x, y) = pairs[2]
    dialog.add_pixel(col, row)
    dialog.add_point(x, y)
    assert dialog.registration is not None
    assert dialog.registration.pixel_size == pytest.approx(1.2 * UM, rel=1e-3)
    assert dialog.save_button.isEnabled()
    dialog.table.selectRow(2)
    dialog._remove_selected()
    assert dialog.registration is None and not dialog.save_button.isEnabled()


def settled(browser, qtbot) -> None:
    """Wait until the maps and images the browser reads off the GUI thread are drawn."""
    qtbot.waitUntil(lambda: browser.reader.pending == 0, timeout=WAIT_MS)


@pytest.fixture
def browser(qtbot, tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, a_map(), kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    b.show_entry(0)
    settled(b, qtbot)
    return b


def registered(browser, qtbot, start) -> list:
    """`start()` an image registration or store; (stored?, what happened) once it ends, the
    image drawn."""
    with qtbot.waitSignal(browser.imageStored, timeout=WAIT_MS) as ended:
        assert start()
    settled(browser, qtbot)
    return ended.args


def pick_corners(dialog: RegistrationDialog) -> None:
    """Three corners of a 60 × 40-pixel image picked onto a 1 µm-pixel sample grid."""
    for (col, row), (x, y) in [((0, 0), (0, 0)), ((59, 0), (59 * UM, 0)),
                               ((0, 39), (0, 39 * UM))]:
        dialog.add_pixel(col, row)
        dialog.add_point(x, y)


def test_registered_image_is_stored_and_drawn_under_every_map(browser, tmp_path, qtbot,
                                                            monkeypatch) -> None:
    picture = np.zeros((40, 60, 3), np.uint8)
    picture[10:20, 10:30] = (200, 100, 50)
    Image.fromarray(picture).save(tmp_path / "thin.png")

    def pick_and_save(dialog: RegistrationDialog) -> int:
        pick_corners(dialog)
        dialog.name_edit.setText("thin_section")
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(RegistrationDialog, "exec", pick_and_save)
    stored, said = registered(browser, qtbot, lambda: browser.register_image(tmp_path /
                                                                             "thin.png"))
    assert stored, said
    assert [e.name for e in list_entries(browser.path)
            if e.kind == "optical"] == ["thin_section"]
    image, _reg = read_optical_entry(browser.path, "thin_section")
    np.testing.assert_array_equal(image, picture)
    for view in (browser.map_view, *browser.compare.views.values()):
        assert view.underlay.isVisible()
        assert not view.opacity.isHidden()
    view = browser.map_view
    view.opacity.setValue(25)
    assert view.image.opacity() == pytest.approx(0.25)
    # The image's far corner pixel sits on the sample where the control points put it.
    corner = view.underlay.mapToView(QtCore.QPointF(59.5, 39.5))
    assert (corner.x(), corner.y()) == pytest.approx((59.0, 39.0), abs=1e-6)
    # Re-opening the file draws it again; the table lists the entry.
    assert opened(browser, qtbot, browser.path)
    settled(browser, qtbot)
    assert browser.map_view.underlay.isVisible()
    kinds = [e.kind for e in browser.entries]
    assert "optical" in kinds


def test_a_file_that_is_not_an_image_is_reported_and_nothing_written(browser, qtbot,
                                                                     tmp_path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x00garbage")
    stored, said = registered(browser, qtbot, lambda: browser.register_image(tmp_path /
                                                                             "bad.png"))
    assert not stored and "cannot be read as an image" in said
    assert "cannot be read as an image" in browser.message.text()
    assert browser.image_button.isEnabled()  # another image may be chosen
    assert [e.name for e in list_entries(browser.path) if e.kind == "optical"] == []


def test_double_clicking_an_image_entry_shows_that_image(browser, qtbot) -> None:
    """An optical entry has no Bz: opening it shows the picture where it was registered."""
    from smm_daq.analysis.optical import fit_affine

    registration = fit_affine([[0, 0], [59, 0], [0, 39]], [[0, 0], [59 * UM, 0], [0, 39 * UM]])
    first = np.full((40, 60, 3), 30, np.uint8)
    second = np.full((40, 60, 3), 200, np.uint8)
    for image, name in ((first, "first"), (second, "second")):
        assert registered(browser, qtbot, lambda image=image, name=name: browser.store_image(
            image, registration, name, f"{name}.png"))[0]
    row = next(r for r in range(browser.table.rowCount())
               if browser.table.item(r, 0).text() == "first")
    browser.table.cellDoubleClicked.emit(row, 0)
    settled(browser, qtbot)
    assert browser.message.text() == ""
    assert "image of the sample" in browser.map_view.plot.titleLabel.text
    for view in (browser.map_view, *browser.compare.views.values()):
        assert view.underlay.isVisible()
        np.testing.assert_array_equal(view.underlay.image, first)
    shown = browser.map_view.view_box.viewRect()
    assert shown.contains(QtCore.QPointF(0.0, 0.0)) and shown.contains(QtCore.QPointF(59, 39))


def test_an_image_is_read_registered_and_stored_off_the_gui_thread(browser, qtbot, tmp_path,
                                                                   monkeypatch) -> None:
    """A large thin-section scan takes seconds to read and to write: the window stays live,
    and no second image can be started meanwhile (its button is disabled)."""
    import threading

    from gui import session_browser

    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(tmp_path / "thin.png")
    calls: list[tuple[str, threading.Thread]] = []

    def recording(name: str):
        done = getattr(session_browser, name)

        def recorded(*args, **kwargs):
            calls.append((name, threading.current_thread()))
            return done(*args, **kwargs)

        return recorded

    for name in ("read_image", "write_optical_entry", "read_optical_entry"):
        monkeypatch.setattr(session_browser, name, recording(name))
    disabled_in_dialog: list[bool] = []

    def pick_and_save(dialog: RegistrationDialog) -> int:
        disabled_in_dialog.append(not browser.image_button.isEnabled())
        pick_corners(dialog)
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(RegistrationDialog, "exec", pick_and_save)
    with qtbot.waitSignal(browser.imageStored, timeout=WAIT_MS) as ended:
        assert browser.register_image(tmp_path / "thin.png")
        assert not browser.image_button.isEnabled()
        assert not browser.register_image(tmp_path / "thin.png")  # one at a time
    settled(browser, qtbot)
    assert ended.args == [True, f"Stored the image thin.png as entry 'optical' of "
                                f"{browser.path}"]
    assert [name for name, _t in calls] == ["read_image", "write_optical_entry",
                                            "read_optical_entry"]
    assert all(t is not threading.main_thread() for _n, t in calls)
    assert disabled_in_dialog == [True] and browser.image_button.isEnabled()
    assert browser.map_view.underlay.isVisible()


def test_an_image_refused_when_stored_is_shown_and_changes_nothing(browser, qtbot) -> None:
    from smm_daq.analysis.optical import fit_affine

    registration = fit_affine([[0, 0], [59, 0], [0, 39]], [[0, 0], [59 * UM, 0], [0, 39 * UM]])
    image = np.full((40, 60, 3), 30, np.uint8)
    assert registered(browser, qtbot, lambda: browser.store_image(image, registration, "img",
                                                                  "a.png"))[0]
    stored, said = registered(browser, qtbot, lambda: browser.store_image(
        np.zeros((40, 60, 3), np.uint8), registration, "img", "b.png"))
    assert not stored and "entry 'img' already exists" in said
    assert browser.message.text() == said
    np.testing.assert_array_equal(read_optical_entry(browser.path, "img")[0], image)
    assert browser.image_button.isEnabled()


def test_an_image_read_when_the_window_has_closed_opens_no_dialog(browser, qtbot, tmp_path,
                                                                  monkeypatch) -> None:
    import threading

    from gui import session_browser

    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(tmp_path / "thin.png")
    entered, release = threading.Event(), threading.Event()
    read_image = session_browser.read_image

    def held(path):
        entered.set()
        assert release.wait(WAIT_MS / 1000)
        return read_image(path)

    monkeypatch.setattr(session_browser, "read_image", held)
    opened: list[RegistrationDialog] = []
    monkeypatch.setattr(RegistrationDialog, "exec", lambda dialog: opened.append(dialog) or 0)
    with qtbot.waitSignal(browser.imageStored, timeout=WAIT_MS) as ended:
        assert browser.register_image(tmp_path / "thin.png")
        assert entered.wait(WAIT_MS / 1000)
        browser.shutdown()  # the window closes while the image is read
        release.set()
    assert ended.args == [False, "cancelled"] and opened == []


def damaged_tiff(path) -> None:
    """A TIFF whose PlanarConfiguration tag claims data past the file's end: Pillow reads the
    picture and warns ("Truncated File Read")."""
    import io
    import struct

    buf = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]  # little-endian ("II"), as Pillow writes
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag, kind, _count, _value = struct.unpack_from("<HHII", data, at)
        if tag == 284:
            struct.pack_into("<HHII", data, at, tag, kind, 1000, len(data) + 100)
    path.write_bytes(bytes(data))


def test_a_damaged_images_warning_is_said_on_the_session_tab_not_on_stderr(
        browser, qtbot, tmp_path, monkeypatch) -> None:
    """Pillow reads a damaged image with a warning: the Session tab's message line says it
    (while the control points are picked, and with the image stored), instead of stderr, as
    a warning (amber), not in an error's red."""
    import warnings

    from gui.message_line import WARNED_STYLE
    from smm_daq.analysis.optical import ImageWarning

    path = tmp_path / "damaged.tif"
    damaged_tiff(path)
    said_in_dialog: list[tuple[str, str]] = []

    def pick_and_save(dialog: RegistrationDialog) -> int:
        said_in_dialog.append((browser.message.text(), browser.message.line.styleSheet()))
        pick_corners(dialog)
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(RegistrationDialog, "exec", pick_and_save)
    warning = (f"{path}: read, but Pillow warned: Truncated File Read; expected an undamaged "
               "image: check the picture")
    with warnings.catch_warnings(record=True) as caught:  # the worker's, too: process-wide
        warnings.simplefilter("always")
        stored, said = registered(browser, qtbot, lambda: browser.register_image(path))
    assert said_in_dialog == [(warning, WARNED_STYLE)]
    assert stored and said.endswith(f"of {browser.path}\n{warning}")
    assert browser.message.text() == said
    assert browser.message.line.styleSheet() == WARNED_STYLE
    assert not [w for w in caught if issubclass(w.category, ImageWarning)]


@pytest.mark.parametrize("ending", [SystemExit(2), KeyboardInterrupt()])
def test_an_image_read_ended_by_system_exit_ends_the_registration(browser, qtbot, tmp_path,
                                                                  monkeypatch, ending) -> None:
    """Reading the image ends in SystemExit or KeyboardInterrupt (something it calls exits):
    the registration ends all the same, said, and another image may be chosen (unfixed: the
    tab stayed `registering`, its image button disabled, for good)."""
    from gui import session_browser

    def ended(_path):
        raise ending

    monkeypatch.setattr(session_browser, "read_image", ended)
    stored, said = registered(browser, qtbot, lambda: browser.register_image(tmp_path /
                                                                             "thin.png"))
    assert not stored and type(ending).__name__ in said
    assert not browser.registering and browser.image_button.isEnabled()
