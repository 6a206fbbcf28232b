"""A read that a scan in another process overlaps (its writer waits for a reader only so
long) is never taken for the file: HDF5 keeps what it read of the file's layout, so such a
read can find a line done whose values still read as not measured. The read says so
(`WrittenMeanwhile`), and the readers that return what they read (`read_map`, `list_entries`,
`info`) read the file again, returning it as one write left it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from smm_daq.acquisition import recipe_continue
from smm_daq.acquisition.recipe_continue import own_cut_off
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.cli import maps
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage import nexus
from smm_daq.storage.checks import check_intact
from smm_daq.storage.h5file import WrittenMeanwhile, open_read
from smm_daq.storage.intact import needs_repair
from smm_daq.storage.nexus import list_entries, read_map
from smm_daq.storage.optical_entry import read_optical_entry
from smm_daq.storage.product_maps import read_product_map
from smm_daq.storage.scan_entry import (
    ScanEntryWriter,
    check_new_scan,
    read_field_checks,
    read_runs,
    read_scan_record,
)

NX, NY = 12, 3  # a line of 12 points: a noise floor from two lines, none from one
# Line 1 of entry 'scan' stored by another process, as a scan's writer there stores it once
# it has waited for the readers as long as it waits (here not at all).
WRITE_LINE = """
import sys
from pathlib import Path
import numpy as np
from smm_daq.storage import turns
from smm_daq.storage.scan_entry import (
    ScanEntryWriter,
    check_new_scan,
    read_field_checks,
    read_runs,
    read_scan_record,
)
turns.WRITER_WAIT_S = 0.0
w = ScanEntryWriter(Path(sys.argv[1]), "scan", np.array([True, False, False]))
row = np.sin(np.arange(12.0)) * 1e-6
w.write_line(1, row, row, row, np.ones(12), np.arange(12.0))
"""
LINE_1 = np.sin(np.arange(12.0)) * 1e-6


def _write_line_elsewhere(path: Path) -> None:
    subprocess.run([sys.executable, "-c", WRITE_LINE, str(path)], check=True, timeout=120,
                   capture_output=True)


@pytest.fixture
def path(tmp_path) -> Path:
    """A session whose scan has line 0 of 3 stored."""
    made = tmp_path / "s.h5"
    w = ScanEntryWriter.create(made, name="scan", title="t", x=np.arange(NX) * 1e-5,
                               y=np.arange(NY) * 1e-5, field=np.zeros(3), height=1e-4,
                               plan_text="{}", profile=load_profile(), snapshot={})
    row = np.cos(np.arange(NX, dtype=float)) * 1e-6
    w.write_line(0, row, row, row, np.ones(NX), np.arange(NX, dtype=float))
    return made


def test_a_read_that_another_processs_write_overlapped_says_so(path):
    with pytest.raises(WrittenMeanwhile, match="read it again"), open_read(path) as f:
        assert not np.isfinite(f["scan/data/Bz"][1]).any()
        _write_line_elsewhere(path)
        # what HDF5 makes of it: the line done, its values not measured
        assert f["scan/data/line_done"][1]
        assert not np.isfinite(f["scan/data/Bz"][1]).any()


def _overlapped_once(monkeypatch, name: str) -> list[int]:
    """nexus's `name(f, ...)` made to find the file written by another process after it
    began reading it, the first time it is called; the calls counted."""
    real = getattr(nexus, name)
    calls: list[int] = []

    def overlapped(f, *args, **kw):
        calls.append(1)
        if len(calls) == 1:
            f["scan/data/Bz"][()]  # read before the write: HDF5 keeps what it learnt
            _write_line_elsewhere(Path(f.filename))
        return real(f, *args, **kw)

    monkeypatch.setattr(nexus, name, overlapped)
    return calls


def test_a_map_read_while_another_process_stores_a_line_is_read_again_whole(path, monkeypatch):
    calls = _overlapped_once(monkeypatch, "read_map_in")
    np.testing.assert_array_equal(read_map(path, "scan").bz[1], LINE_1)
    assert len(calls) == 2


def test_entries_listed_while_another_process_stores_a_line_are_listed_again(path, monkeypatch):
    _overlapped_once(monkeypatch, "list_entries_in")
    (entry,) = list_entries(path, noise_floors=True)
    monkeypatch.undo()
    assert entry.lines_done == 2 and np.isfinite(entry.noise_floor)  # of both lines
    assert entry.noise_floor == list_entries(path, noise_floors=True)[0].noise_floor


def test_info_while_another_process_stores_a_line_shows_the_file_as_one_write_left_it(
        path, monkeypatch, capsys):
    _overlapped_once(monkeypatch, "list_entries_in")
    assert main(["info", str(path)]) == 0
    during = capsys.readouterr().out
    monkeypatch.undo()
    assert main(["info", str(path)]) == 0
    assert during == capsys.readouterr().out
    assert "lines 2/3" in during and "noise floor -" not in during


def _photo(path: Path) -> None:
    """A registered image 'photo' added to the session."""
    from smm_daq.analysis.optical import ImageRegistration
    from smm_daq.storage.optical_entry import write_optical_entry

    registration = ImageRegistration(np.array([[1e-6, 0, 0], [0, 1e-6, 0]]),
                                     np.zeros((3, 2)), np.zeros((3, 2)), 0.0)
    write_optical_entry(path, "photo", np.zeros((2, 3, 3), np.uint8), registration)


def _not_a_result(path: Path) -> str:
    """What reading the scan as an MMT result says: that it is none, not that another
    process wrote the file meanwhile."""
    from smm_daq.analysis.mmt.result_read import read_result_entry

    with pytest.raises(InputError) as raised:
        read_result_entry(path, "scan")
    return type(raised.value).__name__


def _none(path: Path) -> None:
    pass


def _refused(call: Callable[[Path], object]) -> Callable[[Path], str]:
    """The name of the error `call` raises: InputError for what the file holds (the fixture's
    plan text is no plan), not WrittenMeanwhile for a write elsewhere."""
    def refused(path: Path) -> str:
        with pytest.raises(InputError) as raised:
            call(path)
        return type(raised.value).__name__
    return refused


def _reopened(path: Path) -> list[bool]:
    """The lines done of the scan as a resume takes it over."""
    return ScanEntryWriter.reopen(path, "scan").line_done.tolist()


# what the export commands take a scan's map for: its shape and its sources
_GRID = SimpleNamespace(shape=(NY, NX), sources=("scan",))


@pytest.mark.parametrize(("made", "read", "expected"), [
    (_none, lambda p: nexus.holds_name(p, "scan"), True),
    (_none, lambda p: nexus.read_sensor_thickness(p, "scan"), 0.0),
    (_none, nexus.unfinished_entries, []),
    (_none, nexus.cut_off_replacements, []),
    (_none, nexus.links_and_strays, []),
    (_none, lambda p: read_product_map(p, "scan"), None),
    (_photo, lambda p: read_optical_entry(p, "photo")[0].shape, (2, 3, 3)),
    (_none, _not_a_result, "InputError"),
    (_none, lambda p: nexus.check_new_entry(p, "new", ["scan"], overwrite=False), None),
    (_none, nexus.names_held_by_links, {}),
    (_none, lambda p: nexus.entry_held_as(p, "scan"), "a scan (kind 'scan')"),
    (_none, lambda p: check_new_scan(p, "new"), None),
    (_none, _reopened, [True, False, False]),
    (_none, lambda p: [r.run for r in read_runs(p, "scan")], [0]),
    (_none, lambda p: len(read_field_checks(p, "scan")), 1),
    (_none, lambda p: read_scan_record(p, "scan")["status"], "interrupted"),
    (_none, check_intact, None),
    (_none, needs_repair, False),
    (_none, _refused(lambda p: load_resumable(p, "scan")), "InputError"),
    (_none, lambda p: own_cut_off(p, "", {"scan": None}), set()),
    (_none, _refused(lambda p: recipe_continue._stored(p, "scan")), "InputError"),
    (_none, lambda p: maps._maps_held(str(p), "scan", _GRID, None),
     "Bz (the default), data/lockin_range, data/lockin_x, data/lockin_y, data/time"),
    (_none, lambda p: maps._default_map(str(p), "scan", _GRID, None), None),
    (_none, lambda p: maps._dataset(str(p), "scan", "data/lockin_x", _GRID, str)[1],
     "lockin_x_V"),  # its column: the name and the unit
    (_none, lambda p: maps._saved_result(str(p), "scan"), None),
], ids=["holds_name", "read_sensor_thickness", "unfinished_entries", "cut_off_replacements",
        "links_and_strays", "read_product_map", "read_optical_entry", "read_result_entry",
        "check_new_entry", "names_held_by_links", "entry_held_as", "check_new_scan", "reopen",
        "read_runs", "read_field_checks", "read_scan_record", "check_intact", "needs_repair",
        "load_resumable", "own_cut_off", "recipe_stored", "maps_held", "default_map",
        "export_dataset", "saved_result"])
def test_the_readers_read_again_a_read_another_processs_write_overlapped(
        path, monkeypatch, made, read, expected):
    """Each reader that reads the file whole (the window's, `info`'s, a scan's checks before
    it starts or resumes, a recipe's, the export commands') reads the file again when its
    read was overlapped by a write in another process (here: said so by the read's check,
    the first time), as `read_map` does: neither an error nor a wrong answer (a name taken
    said free, an intact file said to need a repair) for what is only a write elsewhere."""
    from smm_daq.storage import turns

    made(path)
    real, said = turns.changed, []

    def changed(p, before) -> bool:
        if not said:
            said.append(p)
            return True
        return real(p, before)

    monkeypatch.setattr(turns, "changed", changed)
    assert read(path) == expected
    assert said  # the first read was said overlapped, and read again
