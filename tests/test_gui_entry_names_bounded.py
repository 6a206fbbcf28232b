"""The Scan tab keeps the entry names of the session files read (`entries_read`) to propose
a next scan's name: a window open for days reads many files, so it keeps those of the last
ENTRY_NAMES_KEPT, the file in use among them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from gui.rig_holder import RigHolder
from gui.scan_tab import ENTRY_NAMES_KEPT, ScanTab
from smm_daq.instruments.profile import load_profile


def test_the_names_of_many_files_read_are_kept_bounded_the_file_in_use_among_them(
        qtbot, tmp_path: Path) -> None:
    tab = ScanTab(RigHolder(load_profile()))
    qtbot.addWidget(tab)
    in_use = tmp_path / "session.h5"
    tab.entries_read(in_use, [SimpleNamespace(name="scan")])
    files = [tmp_path / f"other-{i}.h5" for i in range(3 * ENTRY_NAMES_KEPT)]
    for i, path in enumerate(files):
        tab.entries_read(path, [SimpleNamespace(name=f"s{i}")])
        if i % 4 == 0:  # a scan's name checked against the file it is written to
            assert tab._taken_names(in_use) == {"scan"}
    assert len(tab._entry_names) == ENTRY_NAMES_KEPT
    assert tab._taken_names(in_use) == {"scan"}
    assert tab._taken_names(files[-1]) == {f"s{len(files) - 1}"}
    assert tab._taken_names(files[0]) == set()  # read longest ago, not used since
    tab.live.timer.stop()
