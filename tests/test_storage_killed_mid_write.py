"""A writer killed with SIGKILL in the middle of a write leaves the file marked open for write
(DESIGN.md §7): in a scan's line, written in SWMR mode, or in a new entry's layout, written
outside it. Each is made by a writer in a subprocess that kills itself at a point in the
write (after the data is flushed), never by timing. Then every smm-daq reader reads the file
and every writer writes it, the scan is resumed to its end (a repair kept its runs
resizable), and where the file is read-only here, the readers read it as it is, unchanged,
and the writers refuse it for its permission."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.h5file import marked_open
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import (
    check_new_entry,
    list_entries,
    read_map,
    unfinished_entries,
    write_map_entry,
)
from smm_daq.storage.scan_entry import check_new_scan

KILLERS = {
    # a scan's line, in SWMR mode as the scan writes it: flushed, then killed
    "line": """
        from smm_daq.storage.h5file import writing
        with writing(sys.argv[1], create=False, swmr=True) as f:
            f["k/data/Bz"][3] = np.zeros(f["k/data/Bz"].shape[1])
            f.flush()
            os.kill(os.getpid(), 9)
        """,
    # a new entry's layout, outside SWMR mode: killed once its last group is laid out
    "layout": """
        from smm_daq.storage import nexus
        from smm_daq.storage.mapdata import MapData
        laid_out = nexus.write_process

        def dying(entry, **kw):
            laid_out(entry, **kw)
            entry.file.flush()
            os.kill(os.getpid(), 9)

        nexus.write_process = dying
        x = np.arange(4) * 1e-6
        nexus.write_map_entry(sys.argv[1], MapData(np.ones((3, 4)), x, x[:3], name="cut"),
                              kind="induced")
        """,
}
FLAGS = {"line": 0x05, "layout": 0x01}  # the superblock's flags each leaves (SWMR or not)


def _plan() -> ScanPlan:
    return ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6,
                                field=(0.0, 20e-6, 0.0))


@pytest.fixture(scope="module")
def scan_cut_off(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session whose scan 'k' was stopped after two of its six lines."""
    path = tmp_path_factory.mktemp("killed") / "base.h5"
    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(lambda e: seq.abort() if e.kind == "line_done" and e.line == 1 else None)
    assert seq.run() == "aborted"
    return path


def _killed(base: Path, into: Path, how: str) -> Path:
    path = into / f"{how}.h5"
    shutil.copy(base, path)
    code = "import os, sys\nimport numpy as np\n" + textwrap.dedent(KILLERS[how])
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    raw = path.read_bytes()
    assert marked_open(path) and raw[8] == 3 and raw[11] == FLAGS[how]
    return path


def _map(name: str) -> MapData:
    x = np.arange(4) * 1e-6
    return MapData(np.zeros((3, 4)), x, x[:3], height=1e-4, name=name)


@pytest.mark.parametrize("how", KILLERS)
def test_every_reader_and_writer_takes_it_and_the_scan_resumes(
        scan_cut_off: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        how: str) -> None:
    path = _killed(scan_cut_off, tmp_path, how)
    measured = read_map(scan_cut_off, "k").bz[:2]
    assert [(e.name, e.status) for e in list_entries(path)] == [("k", "aborted")]
    assert not marked_open(path)  # repaired by the read: every reader opens it from now on
    assert [c.name for c in unfinished_entries(path)] == []  # a cut-off layout left out
    np.testing.assert_array_equal(read_map(path, "k").bz[:2], measured)
    assert main(["info", str(path)]) == 0, capsys.readouterr().err
    check_new_entry(path, "p", (), overwrite=False)
    write_map_entry(path, _map("p"), kind="induced")
    assert Sequencer(fake_rig(), path, _plan(), resume=True).run() == "finished"
    with h5py.File(path, "r") as f:  # plain h5py, as another program opens it
        assert f["k/runs/run"][()].tolist() == [0, 1]
        assert f["k/runs/start_time"].shape == (2,)
    np.testing.assert_array_equal(read_map(path, "k").bz[:2], measured)
    assert sorted(e.name for e in list_entries(path)) == ["k", "p"]


def test_read_only_it_is_read_as_it_is_and_never_written(
        scan_cut_off: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        read_only) -> None:
    """Each kill: a file a writer in SWMR mode was killed in is read in SWMR mode; one a
    writer outside it was killed in (which SWMR mode does not open) as a repair reads it."""
    measured = read_map(scan_cut_off, "k").bz[:2]
    for how in KILLERS:
        folder = tmp_path / how
        folder.mkdir()
        path = _killed(scan_cut_off, folder, how)
        read_only(path)
        before = path.read_bytes()
        assert [e.name for e in list_entries(path)] == ["k"], how
        np.testing.assert_array_equal(read_map(path, "k").bz[:2], measured)
        assert [c.name for c in unfinished_entries(path)] == (["cut"] if how == "layout"
                                                              else [])
        check_new_entry(path, "p", (), overwrite=False)
        check_new_scan(path, "s")
        assert main(["info", str(path)]) == 0, capsys.readouterr().err
        assert "  k  [scan, aborted]" in capsys.readouterr().out
        with pytest.raises(InputError, match=r"cannot open for writing \(Permission denied\)"):
            write_map_entry(path, _map("p"), kind="induced")
        with pytest.raises(InputError, match=r"cannot open for writing \(Permission denied\)"):
            Sequencer(fake_rig(), path, _plan(), resume=True).run()
        assert main(["repair", str(path)]) == 2
        assert "(Permission denied)" in capsys.readouterr().err
        assert path.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == [path.name]
