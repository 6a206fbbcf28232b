"""The Session tab subtracts two chosen entries into a new induced entry."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
from session_reads import opened, refreshed

from gui.session_browser import SessionBrowser
from gui.subtract_dialog import SubtractDialog, unused_name
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

UM = 1e-6
UT = 1e-6


def bump_map(name: str, centre_um: tuple[float, float], amplitude: float, field=(0, 0, 0),
             n: int = 48) -> MapData:
    """A smooth field feature (Gaussian, 12 µm wide) on a 2 µm grid."""
    x = np.arange(n) * 2 * UM
    y = np.arange(n) * 2 * UM
    X, Y = np.meshgrid(x, y)
    r2 = (X - centre_um[0] * UM) ** 2 + (Y - centre_um[1] * UM) ** 2
    bz = amplitude * np.exp(-r2 / (2 * (12 * UM) ** 2))
    return MapData(bz=bz, x=x, y=y, height=20 * UM, sensor_size=(1 * UM, 1 * UM),
                   applied_field=np.array(field, float), name=name, title=name)


@pytest.fixture
def browser(qtbot, tmp_path):
    path = tmp_path / "s.h5"
    # The in-field scan: the same remanent feature, 3 µm to the right, plus an induced part.
    write_map_entry(path, bump_map("rem", (48, 48), 2 * UT), kind="scan")
    infield = bump_map("inf", (51, 48), 2 * UT, field=(0, 40 * UT, 0))
    infield = infield.with_bz(infield.bz + 0.1 * UT)
    write_map_entry(path, infield, kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    return b


def test_dialog_offers_the_likely_pair_and_a_free_name(browser, qtbot) -> None:
    dialog = SubtractDialog(browser.entries)
    qtbot.addWidget(dialog)
    assert dialog.choice() == ("inf", "rem", "induced", True, False, False)
    assert unused_name("induced", {"induced", "induced_2"}) == "induced_3"


def subtract(qtbot, browser: SessionBrowser, *args, **kwargs) -> bool:
    """Run the window's subtraction (in its worker) to its end: whether it wrote the entry."""
    with qtbot.waitSignal(browser.subtracted, timeout=60_000) as ended:
        assert browser.subtract(*args, **kwargs)
    return ended.args[0]


def test_registered_subtraction_removes_the_shift_and_shows_the_result(browser, qtbot) -> None:
    assert subtract(qtbot, browser, "inf", "rem", "induced", register=True)
    info = {e.name: e for e in list_entries(browser.path)}["induced"]
    assert info.kind == "induced" and info.sources == ("inf", "rem")
    assert browser.map_view.map.name == "induced"
    induced = read_map(browser.path, "induced").bz
    centre = induced[12:36, 12:36]  # away from the edges the shift leaves uncovered
    np.testing.assert_allclose(centre[np.isfinite(centre)], 0.1 * UT, atol=0.02 * UT)
    assert ": shift found (3.0" in browser.map_view.plot.titleLabel.text
    assert "µm, remanent shifted by it" in browser.map_view.plot.titleLabel.text


def test_a_rotation_fitted_is_said_as_the_command_line_says_it(browser, qtbot) -> None:
    """The window said the shift of a subtraction registered with a rotation, not the
    rotation applied; the command line says ", rotation 0.0123 ± 0.0456°"."""
    with qtbot.waitSignal(browser.subtracted, timeout=60_000) as ended:
        assert browser.subtract("inf", "rem", "turned", rotation=True)
    said = ended.args[1]
    assert re.search(r"µm, remanent shifted by it; rotation -?\d+\.\d{4} ± \d+\.\d{4}°, "
                     "remanent rotated by it", said), said
    assert "; rotation " in browser.map_view.plot.titleLabel.text


def test_unregistered_subtraction_is_the_plain_difference(browser, qtbot) -> None:
    assert subtract(qtbot, browser, "inf", "rem", "plain", register=False)
    expected = read_map(browser.path, "inf").bz - read_map(browser.path, "rem").bz
    np.testing.assert_allclose(read_map(browser.path, "plain").bz, expected)


def test_a_refused_subtraction_is_reported_and_writes_nothing(browser, qtbot) -> None:
    write_map_entry(browser.path, bump_map("small", (20, 20), 1 * UT, n=20), kind="scan")
    assert refreshed(browser, qtbot)
    names = [e.name for e in list_entries(browser.path)]
    assert not subtract(qtbot, browser, "inf", "small", "bad")
    assert browser.message.text()
    assert [e.name for e in list_entries(browser.path)] == names
    assert not subtract(qtbot, browser, "inf", "rem", "rem")  # never replaces an entry
    assert "already exists" in browser.message.text()
    assert browser.subtract_button.isEnabled()


def test_two_zero_field_scans_are_refused_as_an_induced_map(browser, qtbot) -> None:
    """Their difference is a change of remanence or noise, not a response to a field."""
    write_map_entry(browser.path, bump_map("rem2", (48, 48), 2.1 * UT), kind="scan")
    assert refreshed(browser, qtbot)
    names = [e.name for e in list_entries(browser.path)]
    assert not subtract(qtbot, browser, "rem2", "rem", "zz", register=False)
    assert "both scanned in zero field" in browser.message.text()
    assert [e.name for e in list_entries(browser.path)] == names
    assert browser.subtract_button.isEnabled()


def test_an_in_field_scan_the_rig_cannot_tell_from_zero_field_is_refused(browser, qtbot
                                                                          ) -> None:
    """A field of 20 nT is within the rig's field tolerance (50 nT without a stored profile)
    of zero: its difference from a remanent scan is not an induced map."""
    write_map_entry(browser.path, bump_map("weak", (48, 48), 2.1 * UT, field=(0, 0.02 * UT, 0)),
                    kind="scan")
    assert refreshed(browser, qtbot)
    names = [e.name for e in list_entries(browser.path)]
    assert not subtract(qtbot, browser, "weak", "rem", "w", register=False)
    assert "both scanned in zero field ((0, 0.02, 0) µT and (0, 0, 0) µT" \
        in browser.message.text()
    assert [e.name for e in list_entries(browser.path)] == names
    assert browser.subtract_button.isEnabled()


def test_the_subtraction_runs_off_the_gui_thread_and_a_failure_is_shown(browser, qtbot,
                                                                        monkeypatch) -> None:
    import threading

    from smm_daq.analysis import induced_entry

    ran_in: list[threading.Thread] = []

    def broken(*_args, **_kwargs):
        ran_in.append(threading.current_thread())
        raise MemoryError("no room for the registration")

    monkeypatch.setattr(induced_entry, "subtract_entries", broken)
    assert not subtract(qtbot, browser, "inf", "rem", "induced")
    assert ran_in and ran_in[0] is not threading.main_thread()
    assert "no room for the registration" in browser.message.text()
    assert browser.subtract_button.isEnabled() and not browser.subtracting


def entry_layout(path, name: str) -> dict[str, tuple[str, set[str]]]:
    """Every object of an entry: its type and its attributes' names."""
    import h5py

    found: dict[str, tuple[str, set[str]]] = {}
    with h5py.File(path, "r") as f:
        f[name].visititems(lambda key, obj: found.__setitem__(
            key, (type(obj).__name__, set(obj.attrs))))
        found["."] = ("Group", set(f[name].attrs))
    return found


@pytest.mark.parametrize("register", [True, False])
def test_the_windows_entry_records_its_command_as_the_command_lines_does(
        browser, qtbot, register, monkeypatch, capsys) -> None:
    import shlex

    import h5py

    from smm_daq.cli.main import build_parser, main

    argv = ["subtract", str(browser.path), "--in-field", "inf", "--remanent", "rem",
            "--name", "by_cli", *([] if register else ["--no-register"])]
    monkeypatch.setattr("sys.argv", ["smm-daq", *argv])
    assert main(argv) == 0
    assert subtract(qtbot, browser, "inf", "rem", "by_gui", register=register)
    assert entry_layout(browser.path, "by_gui") == entry_layout(browser.path, "by_cli")
    with h5py.File(browser.path, "r") as f:
        parameters = f["by_gui/process/parameters"]
        command = parameters["command"][()].decode()
        assert bool(parameters["register"][()]) is register
    assert command.startswith("smm-daq gui: subtract ")
    again = build_parser().parse_args(shlex.split(command.removeprefix("smm-daq gui: ")))
    assert (again.file, again.in_field, again.remanent, again.name) == (
        str(browser.path), "inf", "rem", "by_gui")
    assert again.no_register is not register and not again.rotation


def test_the_dialog_offers_only_maps_a_subtraction_accepts(browser, qtbot) -> None:
    """Not a model's Bz (χ, M, MMT) nor an image of the sample; a wrong pair is named at
    once and cannot be accepted."""
    from smm_daq.analysis.optical import fit_affine
    from smm_daq.storage.optical_entry import write_optical_entry

    for kind in ("susceptibility", "magnetization", "mmt"):
        write_map_entry(browser.path, bump_map(kind, (48, 48), 1 * UT), kind=kind)
    registration = fit_affine([[0, 0], [9, 0], [0, 9]], [[0, 0], [9 * UM, 0], [0, 9 * UM]])
    write_optical_entry(browser.path, "photo", np.zeros((10, 10, 3), np.uint8), registration)
    assert refreshed(browser, qtbot)
    dialog = SubtractDialog(browser.entries)
    qtbot.addWidget(dialog)
    for box in (dialog.in_field, dialog.remanent):
        assert [box.itemText(i) for i in range(box.count())] == ["rem", "inf"]
    assert dialog.ok_button.isEnabled() and dialog.problem.isHidden()
    dialog.remanent.setCurrentText("inf")
    assert not dialog.ok_button.isEnabled()
    assert "both 'inf'" in dialog.problem.text()
    dialog.in_field.setCurrentText("rem")  # the zero-field scan given as the in-field one
    assert not dialog.ok_button.isEnabled()
    assert "other way round" in dialog.problem.text()


@pytest.mark.parametrize(("register", "rotation", "forced"),
                         [(True, True, False), (True, False, True), (False, False, False)])
def test_the_recorded_command_parses_back_to_the_options_used(register, rotation, forced
                                                              ) -> None:
    import shlex

    from gui.subtract_dialog import subtract_command
    from smm_daq.cli.main import build_parser

    command = subtract_command(Path("s é.h5"), "in field", "rem", "out", register=register,
                               rotation=rotation, apply_insignificant=forced)
    again = build_parser().parse_args(shlex.split(command.removeprefix("smm-daq gui: ")))
    assert (again.file, again.in_field, again.remanent, again.name) == (
        "s é.h5", "in field", "rem", "out")
    assert (again.no_register, again.rotation) == (not register, rotation)
    assert again.apply_insignificant_shift is forced


def test_the_dialog_forces_an_insignificant_shift_only_when_asked(browser, qtbot) -> None:
    """As --apply-insignificant-shift: off by default, said alike, only with a registration."""
    from smm_daq.cli.maps import INSIGNIFICANT_SHIFT_HELP

    dialog = SubtractDialog(browser.entries)
    qtbot.addWidget(dialog)
    box = dialog.force_shift
    assert not box.isChecked() and box.isEnabled()
    assert box.toolTip().lower() == INSIGNIFICANT_SHIFT_HELP.lower()
    box.setChecked(True)
    assert dialog.choice()[3:] == (True, False, True)
    dialog.register.setChecked(False)
    assert not box.isEnabled() and dialog.choice()[3:] == (False, False, False)


@pytest.fixture
def unshifted(qtbot, tmp_path):
    """A browser on two scans of the same grains, not moved between them: the registration
    finds a shift not significantly different from zero (`test_registration_coverage`)."""
    from dataclasses import replace

    from test_registration_coverage import scans

    in_field, remanent, _ = scans(np.random.default_rng(1), 4, (1.0, 0.0, 0.0), 0.5,
                                  shift=(0.0, 0.0))
    path = tmp_path / "u.h5"
    write_map_entry(path, replace(remanent, name="rem"), kind="scan")
    write_map_entry(path, replace(in_field, name="inf"), kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    return b


@pytest.mark.parametrize("forced", [False, True])
def test_the_window_says_whether_the_shift_found_was_applied(unshifted, qtbot, forced
                                                             ) -> None:
    from smm_daq.storage.h5file import open_read

    with qtbot.waitSignal(unshifted.subtracted, timeout=60_000) as ended:
        assert unshifted.subtract("inf", "rem", "d", apply_insignificant=forced)
    assert ended.args[0], ended.args
    said = ended.args[1]
    assert ": shift found (" in said, said
    assert ("remanent shifted by it" in said) is forced, said
    assert ("not significantly different from zero: not applied" in said) is not forced, said
    # the warning names how the window forces it, not the command line's flag
    assert ('"Apply a shift not significantly different from zero"' in said) is not forced, said
    assert "--apply-insignificant-shift" not in said, said
    plain = read_map(unshifted.path, "inf").bz - read_map(unshifted.path, "rem").bz
    assert np.array_equal(read_map(unshifted.path, "d").bz, plain, equal_nan=True) is not forced
    with open_read(unshifted.path) as f:
        parameters = f["d/process/parameters"]
        command = parameters["command"][()].decode()
        assert bool(parameters["apply_insignificant_shift"][()]) is forced
    assert ("--apply-insignificant-shift" in command) is forced, command


def test_a_subtraction_written_while_the_file_cannot_be_read_again_is_said(browser, qtbot,
                                                                          monkeypatch) -> None:
    """The entry is written, but the file is not readable at the moment the tab reads it again
    (e.g. a scan writing a line): the window says so, where it raised in its event loop."""
    from gui import session_browser

    def busy(path):
        raise OSError("unable to lock file")

    with monkeypatch.context() as patch:
        patch.setattr(session_browser, "list_entries", busy)
        assert subtract(qtbot, browser, "inf", "rem", "induced", register=False)
    assert "Wrote entry 'induced'" in browser.message.text()
    assert "Refresh shows it" in browser.message.text()
    assert "induced" in {e.name for e in list_entries(browser.path)}


def test_a_subtraction_whose_file_was_left_meanwhile_is_not_said_unreadable(
        browser, qtbot, tmp_path, monkeypatch) -> None:
    """The user opens another file while the tab reads the file written again: the entry is
    said written, not that the file "could not be read again just now" (it was not even
    read to the end: another file is wanted)."""
    from gui import session_browser

    written_into = browser.path
    other = tmp_path / "other.h5"
    write_map_entry(other, bump_map("elsewhere", (48, 48), 2 * UT), kind="scan")
    entered, release = threading.Event(), threading.Event()

    def held(path):
        entries = list_entries(path)
        if Path(path) == written_into:
            entered.set()
            assert release.wait(20), "held read never let go"
        return entries

    monkeypatch.setattr(session_browser, "list_entries", held)
    try:
        with qtbot.waitSignal(browser.subtracted, timeout=60_000) as ended:
            assert browser.subtract("inf", "rem", "induced", register=False)
            qtbot.waitUntil(entered.is_set, timeout=60_000)
            browser.open_file(other)
            told = browser.message.text()  # until the other file's entries are shown
    finally:
        release.set()
    qtbot.waitUntil(lambda: browser.reading is None, timeout=60_000)
    said = f"Wrote entry 'induced' (induced) into {written_into}"
    assert ended.args == [True, said] and told == said
    assert browser.path == other


def test_the_dialog_refuses_a_new_name_that_is_taken_or_no_name(browser, qtbot) -> None:
    """OK was usable with a name the file holds already, or none: the registration then ran
    for nothing and the write was refused."""
    dialog = SubtractDialog(browser.entries)
    qtbot.addWidget(dialog)
    assert dialog.ok_button.isEnabled()
    dialog.name.setText("rem")
    assert not dialog.ok_button.isEnabled()
    assert dialog.problem.text() == "Entry 'rem' exists already; choose a new name."
    dialog.name.setText("  ")
    assert not dialog.ok_button.isEnabled() and "not usable" in dialog.problem.text()
    dialog.name.setText("a/b")
    assert not dialog.ok_button.isEnabled()
    dialog.name.setText("induced_y")
    assert dialog.ok_button.isEnabled() and dialog.problem.isHidden()


def test_the_dialog_names_an_induced_map_paired_with_a_scan_at_once(browser, qtbot) -> None:
    """An induced map minus a scan (or a scan minus one) is refused by the subtraction: the
    dialog says so as the pair is chosen, and OK cannot start it; two induced maps may go."""
    assert subtract(qtbot, browser, "inf", "rem", "induced", register=False)
    assert subtract(qtbot, browser, "inf", "rem", "induced_b", register=False)
    assert refreshed(browser, qtbot)
    dialog = SubtractDialog(browser.entries)
    qtbot.addWidget(dialog)
    dialog.in_field.setCurrentText("induced")
    dialog.remanent.setCurrentText("rem")
    assert not dialog.ok_button.isEnabled()
    assert "'induced' is an induced map" in dialog.problem.text()
    dialog.in_field.setCurrentText("inf")
    dialog.remanent.setCurrentText("induced")
    assert not dialog.ok_button.isEnabled()
    assert "'induced' is an induced map" in dialog.problem.text()
    dialog.in_field.setCurrentText("induced_b")
    dialog.name.setText("difference")
    assert dialog.ok_button.isEnabled() and dialog.problem.isHidden(), dialog.problem.text()


@pytest.mark.parametrize("forced", [False, True])
def test_a_shift_not_determined_is_said_left_out_and_refused_where_forced(qtbot, tmp_path,
                                                                         forced) -> None:
    """Maps whose fit reaches the bound of its search (`test_registration_coverage`): the
    subtraction failed. Now the maps are subtracted as they lie, said; forced, refused in the
    window's words."""
    from dataclasses import replace

    from test_registration_coverage import _the_13th_map_of_seed_1_at_1_5

    in_field, remanent = _the_13th_map_of_seed_1_at_1_5()
    path = tmp_path / "w.h5"
    write_map_entry(path, replace(remanent, name="rem"), kind="scan")
    write_map_entry(path, replace(in_field, name="inf"), kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    with qtbot.waitSignal(b.subtracted, timeout=60_000) as ended:
        assert b.subtract("inf", "rem", "d", apply_insignificant=forced)
    wrote, said = ended.args
    assert wrote is not forced, said
    assert "determined no shift: the fit reached the bound" in said, said
    assert "--apply-insignificant-shift" not in said and "--no-register" not in said, said
    if forced:
        assert '"Apply a shift not significantly different from zero"' in said, said
        assert "d" not in {e.name for e in list_entries(path)}
    else:
        assert ": no shift determined, none applied" in said, said
        np.testing.assert_array_equal(read_map(path, "d").bz, in_field.bz - remanent.bz)
