"""A session file that cannot grow (a full disk, a quota, a file size limit) is refused a
write before HDF5 touches it: the scan fails with a message saying so, every line stored
before stays readable in any HDF5 reader, and `resume` finishes the scan once there is room.

The limit is real: the scan runs in a child process under RLIMIT_FSIZE, set below what the
whole scan writes, so the file system refuses a write at the same byte each run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main

resource = pytest.importorskip("resource")

SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "400,600", "--step-um", "20",
        "--field-uT", "0,30,0", "--name", "k"]
NY = 31
HEADROOM = 16 << 10  # the child's reservation: below the limit's margin, so lines get written

UNDER_A_LIMIT = textwrap.dedent(
    """
    import resource, sys
    from smm_daq.cli.main import main
    from smm_daq.storage import h5file
    h5file.HEADROOM = int(sys.argv[3])
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(sys.argv[4:]))
    """
)


def _scan_under_limit(path: Path, limit: int) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", UNDER_A_LIMIT, str(path), str(limit), str(HEADROOM), *SCAN,
         "--out", str(path)],
        capture_output=True, text=True, env=env, timeout=300,
    )


@pytest.mark.slow
def test_a_scan_that_runs_out_of_room_keeps_its_lines_and_resumes(tmp_path):
    whole = tmp_path / "whole.h5"
    assert main([*SCAN, "--out", str(whole)]) == 0
    with h5py.File(whole, "r") as f:
        reference = f["k/data/Bz"][()]
    path = tmp_path / "s.h5"
    # 2 kB short of the whole scan: with the child's HEADROOM reserved beyond each write, the
    # scan stops some twenty lines (of 840 bytes) before its end
    done = _scan_under_limit(path, whole.stat().st_size - 2048)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "no room to write" in done.stderr and "smm-daq resume" in done.stderr

    with h5py.File(path, "r") as f:  # a plain reader opens it: not cut short
        status = f["k/status"].asstr()[()]
        line_done = f["k/data/line_done"][()].astype(bool)
        bz = f["k/data/Bz"][()]
    assert status in ("failed", "interrupted")
    assert 0 < line_done.sum() < NY
    np.testing.assert_array_equal(bz[line_done], reference[line_done])
    h5dump = shutil.which("h5dump")
    if h5dump is not None:
        assert subprocess.run([h5dump, "-H", str(path)], capture_output=True).returncode == 0

    assert main(["resume", str(path), "--entry", "k"]) == 0
    with h5py.File(path, "r") as f:
        assert f["k/status"].asstr()[()] == "finished"
        assert f["k/data/line_done"][()].all()
        after = f["k/data/Bz"][()]
    np.testing.assert_array_equal(after[line_done], reference[line_done])
    assert np.isfinite(after).all()


MAP_UNDER_A_LIMIT = textwrap.dedent(
    """
    import os, resource, sys
    import numpy as np
    from smm_daq.errors import StorageError
    from smm_daq.storage import h5file
    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry
    h5file.HEADROOM = 1024
    path = sys.argv[1]
    x = np.arange(300) * 1e-6
    limit = os.path.getsize(path) + 100_000  # a third of the map's 720 kB
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        write_map_entry(path, MapData(np.ones((300, 300)), x, x, name="second"), kind="import")
    except StorageError as exc:
        print(exc)
        sys.exit(1)
    """
)


def test_a_map_entry_without_room_is_refused_and_the_file_is_kept(tmp_path):
    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

    path = tmp_path / "s.h5"
    x = np.arange(300) * 1e-6
    first = np.outer(x, x)
    write_map_entry(path, MapData(first, x, x, name="first"), kind="import")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", MAP_UNDER_A_LIMIT, str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "no room to write" in done.stdout and "the file is as it was" in done.stdout
    assert [e.name for e in list_entries(path)] == ["first"]
    np.testing.assert_array_equal(read_map(path, "first").bz, first)
    with h5py.File(path, "r") as f:
        assert list(f) == ["first"]


KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from smm_daq.storage.h5file import writing
    with writing(sys.argv[1], create=False, swmr=True) as f:
        f["k/data/Bz"][1] = np.zeros(f["k/data/Bz"].shape[1])
        f.flush()
        os.kill(os.getpid(), 9)
    """
)

COMMAND_UNDER_A_LIMIT = textwrap.dedent(
    """
    import resource, sys
    from smm_daq.cli.main import main
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(sys.argv[2:]))
    """
)


def test_a_file_left_open_is_not_repaired_without_room_and_is_still_read(tmp_path):
    """Repair rebuilds the file beside it: without room for that copy it says so (HDF5
    writing a file the disk cannot hold crashed the process, also a reader's), and readers
    read the file as it is."""
    from smm_daq.storage.h5file import marked_open

    path = tmp_path / "s.h5"
    assert main([*SCAN[:4], "200,100", *SCAN[5:], "--out", str(path)]) == 0
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")]))
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(path)], env=env)
    assert killed.returncode == -9 and marked_open(path)
    before = path.read_bytes()

    def under_limit(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", COMMAND_UNDER_A_LIMIT, str(len(before) // 2), *argv],
            capture_output=True, text=True, env=env, timeout=120)

    repaired = under_limit("repair", str(path))
    assert repaired.returncode == 1, repaired.stderr
    assert "no room to repair it" in repaired.stderr and "Traceback" not in repaired.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    listed = under_limit("info", str(path))
    assert listed.returncode == 0, listed.stderr
    assert "k  [scan, finished]  11 × 6" in listed.stdout  # read as it is, in SWMR mode


REBUILD_UNDER_A_LIMIT = textwrap.dedent(
    """
    import resource, sys
    from smm_daq.cli.main import main
    from smm_daq.errors import StorageError
    from smm_daq.storage import h5file
    path, limit, headroom, how = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    h5file.HEADROOM = headroom
    rebuild = h5file._rebuild

    def said(*args, **kw):
        print("the copy began", flush=True)
        return rebuild(*args, **kw)

    h5file._rebuild = said
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if how == "repair":
        sys.exit(main(["repair", path]))
    try:
        h5file.make_extendable(path, ["/x"])
    except StorageError as exc:
        print(exc)
        sys.exit(1)
    """
)


def _rebuilt_under_limit(path: Path, limit: int, headroom: int, how: str
                         ) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", REBUILD_UNDER_A_LIMIT, str(path), str(limit), str(headroom),
         how], capture_output=True, text=True, env=env, timeout=120)


def _session_file(path: Path, libver: str, fill) -> None:
    from smm_daq import PROGRAM_NAME, __version__

    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["creator"] = f"{PROGRAM_NAME} {__version__}"
        fill(f)


def _needed_mb(said: str) -> float:
    import re

    found = re.search(r"it needs up to ([\d.]+) MB there, and its disk has [\d.]+ [MG]B free",
                      said)
    assert found, said
    return float(found[1])


def test_a_repair_whose_copy_indexes_every_chunk_is_refused_before_it_copies(tmp_path):
    """A file of the oldest format holding two chunks of a dataset declaring 2^20 of them:
    its 1.10 copy indexes all 2^20 (8 MB), though the file is a few kB. Under a limit that
    holds the file and the headroom but not that index, the repair says how much it needs
    and how much there is, before it copies anything; the file is as it was."""
    from smm_daq.storage.h5file import repair

    path = tmp_path / "old.h5"

    def sparse(f: h5py.File) -> None:
        d = f.create_dataset("scan/data/sparse", shape=(1 << 20,), chunks=(1,), dtype="u1")
        d[0] = d[-1] = 1

    _session_file(path, "earliest", sparse)
    before = path.read_bytes()
    limit = len(before) + (6 << 20)  # the default headroom, 4 MB, and 2 MB more
    done = _rebuilt_under_limit(path, limit, 4 << 20, "repair")
    assert done.returncode == 1, done.stderr
    assert "no room to repair it" in done.stderr and "Traceback" not in done.stderr
    assert "the copy began" not in done.stdout
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]
    needed = _needed_mb(done.stderr) * 1e6
    repair(path)  # with room: the copy is no larger than said (to the 0.1 MB shown)
    assert 8 * (1 << 20) < path.stat().st_size <= needed + 50_000


def test_a_rebuild_making_a_long_array_extendable_needs_little_room_beyond_the_file(tmp_path):
    """A contiguous 1-D array of 2^20 values made extendable: its copy is chunked by 64 kB,
    128 chunks indexed in 2 kB (chunked by 16 values, its 65,536 chunks were indexed in
    0.5 MB, and a rebuild under this limit was refused for it). Under a limit that holds the
    file, the headroom (64 kB here) and 192 kB more, it is rebuilt, its values as they were,
    and the copy is no larger than the room reserved for it."""
    path = tmp_path / "s.h5"
    _session_file(path, "latest", lambda f: f.create_dataset(
        "x", data=np.arange(1 << 20, dtype="f8")))
    before = path.stat().st_size
    done = _rebuilt_under_limit(path, before + (256 << 10), 64 << 10, "extend")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the copy began" in done.stdout
    assert path.stat().st_size <= before + (64 << 10)
    with h5py.File(path, "r") as f:
        assert f["x"].maxshape == (None,) and f["x"].chunks == (8192,)
        np.testing.assert_array_equal(f["x"][()], np.arange(1 << 20, dtype="f8"))


def test_a_rebuild_of_a_file_of_many_small_datasets_asks_for_little_more_than_the_file(
        tmp_path):
    """A session file of many scans holds hundreds of chunked datasets of a few chunks each,
    whose 1.10 indexes take a few hundred bytes apiece (a B-tree's first node, 2 kB, at
    most). Under a limit that holds the file, the headroom and 2 MB more, a rebuild (one
    array made extendable) is done, not refused as needing room for indexes many times the
    file."""
    def many(f: h5py.File) -> None:
        f.create_dataset("x", data=np.arange(4.0))
        for i in range(300):
            f.create_dataset(f"scan{i}/data/y", data=np.arange(8.0), maxshape=(None,),
                             chunks=(8,))

    path = tmp_path / "s.h5"
    _session_file(path, "latest", many)
    limit = path.stat().st_size + (6 << 20)  # the default headroom, 4 MB, and 2 MB more
    done = _rebuilt_under_limit(path, limit, 4 << 20, "extend")
    assert done.returncode == 0, done.stdout + done.stderr
    with h5py.File(path, "r") as f:
        assert f["x"].maxshape == (None,)
        np.testing.assert_array_equal(f["scan299/data/y"][()], np.arange(8.0))
