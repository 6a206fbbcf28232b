"""The Session tab exports, levels and takes the noise of the selected map as the command
line does, through the command line's own functions."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtWidgets
from session_reads import refreshed
from test_gui_subtract import browser  # noqa: F401  # the tab on two small scans

from smm_daq.cli.main import main

WAIT_MS = 60_000


def cli(*words: str) -> int:
    """`smm-daq WORDS`, run in process, its output kept off the test's."""
    with redirect_stdout(io.StringIO()):
        return main(list(words))


def select(browser, name: str) -> None:  # noqa: F811
    row = browser._row_of(name)
    assert row is not None
    browser.table.selectRow(row)


def export_clicked(browser, qtbot, monkeypatch, chosen: Path, replace: bool = False  # noqa: F811
                   ) -> tuple[bool, str]:
    """Export… clicked, `chosen` picked in its file dialog (and `replace` answered where
    it asks): (written?, what the tab said)."""
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *_a, **_k: (str(chosen), ""))
    answer = (QtWidgets.QMessageBox.StandardButton.Yes if replace
              else QtWidgets.QMessageBox.StandardButton.No)
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *_a, **_k: answer)
    with qtbot.waitSignal(browser.exported, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(browser.export_button, QtCore.Qt.MouseButton.LeftButton)
    return ended.args[0], ended.args[1]


def drawn(m, path, *, values=None, label="Bz (nT)", factor=1e9, title=None
          ) -> tuple[object, ...]:
    """All that `write_png`'s picture is drawn from, but its path: its map (values, grid,
    sensor, names), values, label, factor and title."""
    def data(a) -> bytes | None:
        return None if a is None else np.asarray(a, dtype=float).tobytes()

    return (data(m.bz), data(m.x), data(m.y), m.sensor_size, m.name, m.title, data(values),
            label, factor, title)


def test_export_writes_what_the_command_line_writes(browser, qtbot, monkeypatch,  # noqa: F811
                                                     tmp_path) -> None:
    """The CSVs alike byte for byte; the pictures drawn from the same (`write_png`, drawing
    each one alike, draws the command line's only in part: a picture takes a while)."""
    from smm_daq.analysis import export

    pictures: list[tuple[Path, tuple[object, ...]]] = []
    write_png = export.write_png

    def drawing(m, path, **kwargs) -> Path:
        pictures.append((Path(path), drawn(m, path, **kwargs)))
        return write_png(m, path, **kwargs) if len(pictures) == 1 else Path(path)

    monkeypatch.setattr(export, "write_png", drawing)
    select(browser, "inf")
    assert browser.export_button.isEnabled()
    written, said = export_clicked(browser, qtbot, monkeypatch, tmp_path / "gui")
    assert written, said
    assert cli("export", str(browser.path), "--entry", "inf", "--csv",
               str(tmp_path / "cli.csv"), "--png", str(tmp_path / "cli.png")) == 0
    assert (tmp_path / "gui.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    assert [path.name for path, _ in pictures] == ["gui.png", "cli.png"]
    assert pictures[0][1] == pictures[1][1]
    assert (tmp_path / "gui.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "gui.csv" in browser.message.text() and "gui.png" in browser.message.text()


def test_export_over_the_session_file_is_refused(browser, qtbot, monkeypatch  # noqa: F811
                                                 ) -> None:
    """The command line's rule: never text over an HDF5 file, replaced or not."""
    select(browser, "inf")
    before = browser.path.read_bytes()
    written, said = export_clicked(browser, qtbot, monkeypatch, browser.path, replace=True)
    assert not written
    assert "the CSV file is" in said and "an HDF5 file" in said and "--" not in said
    assert "nothing was written" in said
    assert browser.message.text() == said
    assert browser.path.read_bytes() == before
    assert not browser.path.with_suffix(".png").exists()


def entry_contents(path: Path, name: str) -> dict[str, object]:
    """Every dataset and attribute under entry `name`, by path inside it."""
    import h5py

    found: dict[str, object] = {}

    def keep(where: str, node) -> None:
        if isinstance(node, h5py.Dataset):
            found[where] = np.asarray(node[()]).tolist()
        found.update({f"{where}@{k}": np.asarray(v).tolist() for k, v in node.attrs.items()})

    with h5py.File(path, "r") as f:
        f[name].visititems(keep)
        keep("", f[name])
    return found


# what differs between two writes of the same entry: when, and the references to its sources
WHEN = {"start_time", "end_time", "process/date", "process/sources"}
COMMAND = "process/parameters/command"


def alike(contents: dict[str, object]) -> dict[str, str]:
    """An entry's contents (`entry_contents`) but for what differs between two writes, as
    text: NaN as NaN, where NaN != NaN (the row between two outlines)."""
    return {k: repr(v) for k, v in contents.items() if k not in WHEN | {COMMAND}}


def background_chosen(browser, qtbot, monkeypatch, choose) -> tuple[bool, str]:  # noqa: F811
    """Background… clicked on the selected entry, its dialog filled by `choose(dialog)` and
    accepted: (written?, what the tab said)."""
    from gui.background_dialog import BackgroundDialog

    def accepted(dialog: BackgroundDialog) -> QtWidgets.QDialog.DialogCode:
        choose(dialog)
        assert dialog.ok_button.isEnabled(), dialog.problem.text()
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(BackgroundDialog, "exec", accepted)
    with qtbot.waitSignal(browser.processed, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(browser.background_button, QtCore.Qt.MouseButton.LeftButton)
    return ended.args[0], ended.args[1]


def test_background_writes_the_entry_the_command_line_writes(browser, qtbot,  # noqa: F811
                                                              monkeypatch) -> None:
    """A border, several rectangles and the sample's outlines, as the command takes them
    (the dialog took a border and one rectangle): the same entry, their record too."""
    outlines = ("20,20; 70,20; 70,70; 20,70", "80,80;90,80;90.5,90")

    def plane_on_a_border_rectangles_and_outlines(dialog) -> None:
        dialog.removal.setCurrentIndex(1)  # a plane
        dialog.border.lineEdit().setText("10,5")  # as typed, with a decimal comma
        dialog.border.interpretText()
        for box, value in zip(dialog.add_rectangle(), (-20, 30, 0, 12.5), strict=True):
            box.setValue(value)
        dialog.add_rectangle((1, 2, 3, 4))
        dialog.add_rectangle((60, 94, 0, 8))
        dialog.remove_rectangle(1)  # the one between: the others kept, in order
        dialog.outlines.setPlainText(f"{outlines[0]}\n\n  {outlines[1]}\n")
        dialog.name.setText("gui_plane")

    select(browser, "inf")
    written, said = background_chosen(browser, qtbot, monkeypatch,
                                      plane_on_a_border_rectangles_and_outlines)
    assert written, said
    assert "plane fitted on" in said and "wrote entry 'gui_plane' (background)" in said
    assert cli("background", str(browser.path), "--entry", "inf", "--name", "cli_plane",
               "--model", "plane", "--border-um", "10.5",
               "--background-rect", "-20,30,0,12.5", "--background-rect", "60,94,0,8",
               "--sample-polygon", outlines[0], "--sample-polygon", outlines[1]) == 0
    gui, line = entry_contents(browser.path, "gui_plane"), entry_contents(browser.path,
                                                                          "cli_plane")
    assert gui[COMMAND].startswith(b"smm-daq gui: background ")
    assert alike(gui) == alike(line)
    assert np.shape(gui["process/parameters/background_rectangles"]) == (2, 4)
    assert np.shape(gui["process/parameters/sample_polygons"]) == (4 + 1 + 3, 2)
    assert browser.map_view.map.name == "gui_plane"  # the new entry listed and shown
    assert browser.selected_entry().name == "gui_plane"


def test_an_outline_the_command_cannot_read_is_said_and_stops_ok(qtbot) -> None:
    """Said beside the outlines as the command would refuse it, naming its line; OK off."""
    from gui.background_dialog import BackgroundDialog

    dialog = BackgroundDialog("inf", set())
    qtbot.addWidget(dialog)
    dialog.outlines.setPlainText("0,0; 10,0; 10,10; 0,10\n0,0; 10,10; 10,0; 0,10")
    assert not dialog.ok_button.isEnabled()
    said = dialog.problem.text()
    assert said.startswith("Sample's outlines, line 2: the outline '0,0; 10,10; 10,0; 0,10'")
    assert "cross" in said and "--" not in said
    dialog.outlines.setPlainText("0,0; 10,0")
    assert "line 1: the outline is '0,0; 10,0'; expected at least 3" in dialog.problem.text()
    dialog.outlines.setPlainText("0,0; 20,a; 5,5")  # the vertex named, within its outline
    assert dialog.problem.text() == ("Sample's outlines, line 1: the outline '0,0; 20,a; 5,5': "
                                     "the vertex is '20,a'; expected 2 comma-separated numbers")
    dialog.outlines.setPlainText("0,0; 10,0; 10,10")
    assert dialog.ok_button.isEnabled() and dialog.problem.text() == ""


def test_an_outline_is_a_line_as_the_box_shows_it(qtbot) -> None:
    """A form feed or a NEL (latin-1 0x85) pasted within an outline ends no line in the box,
    nor in the outlines read and passed to the command: `str.splitlines` broke it into two
    outlines there (one refused as too short, on a line the box does not show)."""
    from gui.background_dialog import BackgroundDialog

    dialog = BackgroundDialog("inf", set())
    qtbot.addWidget(dialog)
    for mark in ("\x0c", "\x85"):
        dialog.outlines.setPlainText(f"0,0; 10,0;{mark} 10,10\n5,5; 6,5; 6,6")
        assert dialog.outlines.document().blockCount() == 2
        assert dialog.problem.text() == "" and dialog.ok_button.isEnabled()
        assert dialog.outline_lines() == [f"0,0; 10,0;{mark} 10,10", "5,5; 6,5; 6,6"]
        dialog.outlines.setPlainText(f"0,0; 10,0; 10,10{mark}\n5,5; 6,a; 6,6")
        assert dialog.problem.text().startswith("Sample's outlines, line 2: "), mark


def test_each_outline_typed_is_read_once_not_at_every_key(qtbot, monkeypatch) -> None:
    """An outline of thousands of vertices (pasted) takes seconds to read, crossings
    checked: read again at each key typed anywhere in the dialog (the name, a rectangle, the
    other outlines), the window froze at each."""
    import gui.background_dialog as background_dialog

    read: list[str] = []
    um_pairs = background_dialog.um_pairs
    monkeypatch.setattr(background_dialog, "um_pairs",
                        lambda option, text: (read.append(text), um_pairs(option, text))[1])
    dialog = background_dialog.BackgroundDialog("inf", set())
    qtbot.addWidget(dialog)
    outlines = ["0,0; 10,0; 10,10", "0,0; 10,10; 10,0; 0,10", "5,5; 6,5; 6,6"]
    dialog.outlines.setPlainText("\n".join(outlines[:2]))
    qtbot.keyClicks(dialog.name, "new")
    dialog.add_rectangle((1, 2, 3, 4))
    dialog.outlines.appendPlainText(outlines[2])
    assert sorted(read) == sorted(outlines)
    assert dialog.problem.text().startswith("Sample's outlines, line 2: the outline ")
    dialog.outlines.setPlainText(outlines[2])
    assert dialog.problem.text() == "" and dialog.ok_button.isEnabled()


def test_a_background_off_the_map_is_refused(browser, qtbot, monkeypatch  # noqa: F811
                                              ) -> None:
    """The command's refusal, said on the tab's line; nothing is written."""
    def far_off(dialog) -> None:
        dialog.add_rectangle((500, 600, 500, 600))

    select(browser, "inf")
    before = browser.path.read_bytes()
    written, said = background_chosen(browser, qtbot, monkeypatch, far_off)
    assert not written
    assert ("(the rectangles, the sample's outlines and the border) covers no pixel of the "
            "map") in said
    assert browser.message.text() == said
    assert browser.path.read_bytes() == before
    assert browser.background_button.isEnabled()


def noise_chosen(browser, qtbot, monkeypatch, repeat: str) -> tuple[bool, str]:  # noqa: F811
    """Noise… clicked on the selected entry, `repeat` picked as its repeat: (measured?,
    what the tab said)."""
    offered: list[list[str]] = []

    def pick(_parent, _title, _label, items, *_a, **_k) -> tuple[str, bool]:
        offered.append(list(items))
        return repeat, True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", pick)
    with qtbot.waitSignal(browser.noiseMeasured, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(browser.noise_button, QtCore.Qt.MouseButton.LeftButton)
    assert repeat in offered[0] and browser.selected_entry().name not in offered[0]
    return ended.args[0], ended.args[1]


def test_noise_from_a_repeat_is_the_command_lines(browser, qtbot, monkeypatch  # noqa: F811
                                                  ) -> None:
    from test_gui_subtract import bump_map

    from smm_daq.storage.nexus import write_map_entry

    again = bump_map("inf_again", (51, 48), 2e-6, field=(0, 40e-6, 0))
    noisy = np.random.default_rng(1).normal(0, 3e-9, again.bz.shape)
    write_map_entry(browser.path, again.with_bz(again.bz + 0.1e-6 + noisy), kind="scan")
    assert refreshed(browser, qtbot)
    select(browser, "inf")
    measured, said = noise_chosen(browser, qtbot, monkeypatch, "inf_again")
    assert measured, said
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["noise", str(browser.path), "--entry", "inf", "--repeat",
                     "inf_again"]) == 0
    line = printed.getvalue().strip()
    assert line.startswith("noise: ") and f"'inf': {line}; one map alone: noise floor" in said
    assert browser.message.text() == said


def test_noise_from_an_induced_map_of_a_scan_is_refused(browser, qtbot,  # noqa: F811
                                                        monkeypatch) -> None:
    """The command's refusal, said: the difference of a scan and an induced map is the
    remanence, not noise."""
    from smm_daq.storage.nexus import read_map, write_map_entry

    induced = read_map(browser.path, "inf")
    write_map_entry(browser.path, induced.with_bz(induced.bz, name="ind", sources=("inf", "rem")),
                    kind="induced")
    assert refreshed(browser, qtbot)
    select(browser, "inf")
    measured, said = noise_chosen(browser, qtbot, monkeypatch, "ind")
    assert not measured
    assert "the repeat 'ind': 'ind' is an induced map and 'inf' a scan" in said
    assert browser.message.text() == said


def test_the_background_of_a_scan_cut_off_is_written_with_the_command_lines_warning(
        browser, qtbot, monkeypatch) -> None:  # noqa: F811
    """The command warns on stderr that a product of a scan cut off holds only its lines
    measured; the window said nothing of it."""
    import h5py

    with h5py.File(browser.path, "r+") as f:
        f["inf/status"][()] = "aborted"
        done = np.ones(f["inf/data/Bz"].shape[0], np.uint8)
        done[30:] = 0
        f["inf/data"].create_dataset("line_done", data=done)
    assert refreshed(browser, qtbot)
    select(browser, "inf")
    written, said = background_chosen(browser, qtbot, monkeypatch,
                                      lambda dialog: dialog.border.setValue(10))
    assert written, said
    assert "'inf' is a scan aborted with 30 of 48 lines measured" in browser.message.details()
    from gui.message_line import WARNED_STYLE

    assert browser.message.line.styleSheet() == WARNED_STYLE


def test_names_and_a_file_beginning_with_a_dash_are_values_not_options(
        browser, qtbot, monkeypatch) -> None:  # noqa: F811
    """An entry may be named '-x', and a file opened as '-s.h5' (its folder the current
    one): the command's words named them as options, which argparse refused (SystemExit
    in the worker, its usage on stderr, nothing written)."""
    from gui.background_dialog import BackgroundDialog
    from gui.map_noise import noise_words
    from smm_daq.cli.maps import parsed
    from smm_daq.storage.nexus import read_map, write_map_entry

    select(browser, "inf")
    written, said = background_chosen(browser, qtbot, monkeypatch, lambda dialog: (
        dialog.border.setValue(10), dialog.name.setText("-inf_offset")))
    assert written, said
    again = read_map(browser.path, "inf")
    noisy = np.random.default_rng(1).normal(0, 3e-9, again.bz.shape)
    write_map_entry(browser.path, again.with_bz(again.bz + noisy, name="-again"), kind="scan")
    assert refreshed(browser, qtbot)
    select(browser, "inf")
    measured, said = noise_chosen(browser, qtbot, monkeypatch, "-again")
    assert measured, said
    dialog = BackgroundDialog("-a", set())
    qtbot.addWidget(dialog)
    dialog.border.setValue(10)
    for words in (dialog.arguments(Path("-s.h5")), noise_words(Path("-s.h5"), "-a", "-b")):
        args = parsed(words)
        assert (Path(args.file), args.entry) == (Path("-s.h5"), "-a")


def test_ok_takes_the_number_being_typed_and_stops_at_one_refused(qtbot) -> None:
    """A box takes its number on Return or as it is left: OK clicked where the click takes no
    focus from the box (macOS) wrote the number before, and a number refused or clamped as
    the box was left went by unseen, the dialog closed on the value before."""
    from gui.background_dialog import BackgroundDialog

    dialog = BackgroundDialog("inf", set())
    qtbot.addWidget(dialog)
    accepted: list[bool] = []
    dialog.accepted.connect(lambda: accepted.append(True))
    corners = dialog.add_rectangle()

    def typed(box, text: str) -> None:
        box.lineEdit().selectAll()
        qtbot.keyClicks(box.lineEdit(), text)

    typed(corners[3], "12,5")  # typed, not entered
    dialog.accept()
    assert corners[3].value() == 12.5 and accepted == [True]
    typed(corners[1], "twelve")
    dialog.accept()
    assert not accepted[1:] and "'twelve" in dialog.problem.text()
    assert "is not taken" in dialog.problem.text()
    typed(corners[0], "2e7")
    dialog.accept()
    assert not accepted[1:] and "beyond the box's range" in dialog.problem.text()
    assert corners[0].value() == 1e6
    dialog.accept()  # said: what the boxes hold is taken
    assert accepted == [True, True]


def test_a_name_taken_meanwhile_is_refused_without_the_commands_option(
        browser, qtbot) -> None:  # noqa: F811
    """The new entry's name taken once the dialog checked it (another of the window's writes
    queued before): refused, no --overwrite offered, which the window has not."""
    words = ["background", str(browser.path), "--entry=inf", "--border-um=10"]
    with qtbot.waitSignal(browser.processed, timeout=WAIT_MS):
        assert browser.remove_background([*words, "--name=bg"], "bg")
    before = browser.path.read_bytes()
    with qtbot.waitSignal(browser.processed, timeout=WAIT_MS) as ended:
        assert browser.remove_background([*words, "--name=bg", "--model=plane"], "bg")
    written, said = ended.args
    assert not written and "entry 'bg' already exists" in said and "--" not in said
    assert browser.path.read_bytes() == before


def test_export_offers_the_maps_the_command_line_takes(browser, qtbot, monkeypatch,  # noqa: F811
                                                       tmp_path) -> None:
    """An entry holding more than one map: the window asks which, offering what `smm-daq
    export --dataset` takes, and writes what the command writes of the one chosen (it
    exported the default map alone)."""
    import h5py

    from smm_daq.analysis import export

    with h5py.File(browser.path, "r+") as f:  # a scan's raw lock-in reading beside its Bz
        raw = f["inf/data"].create_dataset("X", data=np.arange(48 * 48.0).reshape(48, 48))
        raw.attrs["units"] = "V"
    pictures: list[tuple[Path, tuple[object, ...]]] = []
    monkeypatch.setattr(export, "write_png", lambda m, path, **kwargs: (
        pictures.append((Path(path), drawn(m, path, **kwargs))), Path(path))[1])
    offered: list[list[str]] = []

    def pick(_parent, _title, _label, items, *_a, **_k) -> tuple[str, bool]:
        offered.append(list(items))
        return "data/X", True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", pick)
    select(browser, "inf")
    written, said = export_clicked(browser, qtbot, monkeypatch, tmp_path / "gui")
    assert written, said
    assert offered == [["Bz (the default)", "data/X"]]
    assert cli("export", str(browser.path), "--entry", "inf", "--dataset", "data/X", "--csv",
               str(tmp_path / "cli.csv"), "--png", str(tmp_path / "cli.png")) == 0
    assert (tmp_path / "gui.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    assert b"X_V" in (tmp_path / "gui.csv").read_bytes().splitlines()[0]
    assert [path.name for path, _ in pictures] == ["gui.png", "cli.png"]
    assert pictures[0][1] == pictures[1][1]
    assert said.startswith("Exported data/X of 'inf': ")


def test_export_says_it_wrote_nothing_where_another_file_was_opened_meanwhile(
        browser, qtbot, monkeypatch, tmp_path) -> None:  # noqa: F811
    """Another file opened while the entry's maps were being listed (the export was dropped
    unsaid), or while the CSV was being chosen (the other file's entry of that name was
    exported): said, nothing written."""
    import shutil
    import threading

    from session_reads import opened

    first, other = browser.path, tmp_path / "other.h5"
    shutil.copy(first, other)  # an entry 'inf' there too
    ended: list[tuple[bool, str]] = []
    browser.exported.connect(lambda written, said: ended.append((written, said)))
    go = threading.Event()
    browser.reader.submit(lambda: go.wait(WAIT_MS / 1000))  # the listing waits behind it
    select(browser, "inf")
    try:
        browser.export_button.click()
        assert opened(browser, qtbot, other)
    finally:
        go.set()
    qtbot.waitUntil(lambda: browser.reader.pending == 0, timeout=WAIT_MS)
    assert ended == [(False, browser.message.text())]
    assert ended[0][1] == (f"Not exported: {first} is no longer the file open (another was "
                           "opened while the maps of 'inf' were being listed); nothing was "
                           "written")

    assert opened(browser, qtbot, first)
    select(browser, "inf")

    def chosen_as_another_opens(*_a, **_k) -> tuple[str, str]:
        assert opened(browser, qtbot, other)
        return str(tmp_path / "gui.csv"), ""

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", chosen_as_another_opens)
    browser.export_button.click()
    qtbot.waitUntil(lambda: len(ended) == 2 and browser.reader.pending == 0, timeout=WAIT_MS)
    assert ended[1] == (False, browser.message.text())
    assert ended[1][1] == (f"Not exported: {first} is no longer the file open (another was "
                           "opened while the export of 'inf' was being chosen); nothing was "
                           "written")
    assert not (tmp_path / "gui.csv").exists() and not (tmp_path / "gui.png").exists()
