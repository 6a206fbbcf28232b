"""Every reader and writer of a session file refuses one whose HDF5 global heap is damaged
before HDF5 reads it (libhdf5 loops forever there, in a call nothing interrupts): `mmt
invert`, `export`, `subtract`, a writer adding an entry to the file, and the read the
window's Sessions tab makes as it opens a file. A file is scanned once per state, not once per
read; and bytes that look like a damaged heap within a dataset's stored values are no heap."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_global_heap_damage import HEADER, _session

from smm_daq.errors import InputError
from smm_daq.storage import data_extents, global_heap
from smm_daq.storage.global_heap import check_global_heaps
from smm_daq.storage.h5file import read_whole, writing

REPO = Path(__file__).resolve().parents[1]
GRAINS = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,2,2,-10,1,1,1\n"


def _zeroed_after_header(path: Path, at: int) -> None:
    """The collection at `at` damaged as the outside fuzzer's file was: its first object reads
    as a free space of 0 bytes."""
    data = bytearray(path.read_bytes())
    data[at + HEADER:at + HEADER + 16] = bytes(16)
    path.write_bytes(bytes(data))


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """In a process of its own, killed after 60 s: the hang this prevents cannot be
    interrupted in-process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          timeout=60)


# Runs each command line of argv[2] (JSON) through `smm-daq`'s main in turn, printing for each
# as a JSON line its exit code, what it said on stderr, and whether the file argv[1] and the
# output argv[3] are as they were before the first.
_IN_TURN = """
import hashlib, io, json, sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from smm_daq.cli.main import main
path, out = Path(sys.argv[1]), Path(sys.argv[3])
before = hashlib.sha256(path.read_bytes()).hexdigest()
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(argv)
    print(json.dumps([code, err.getvalue(),
                      hashlib.sha256(path.read_bytes()).hexdigest() == before, out.exists()]))
"""


@pytest.mark.timeout(300)
def test_every_reader_and_writer_refuses_a_damaged_heap(tmp_path):
    path = _session(tmp_path / "s.h5")
    at = path.read_bytes().find(b"GCOL")
    _zeroed_after_header(path, at)
    before = path.read_bytes()
    grains = tmp_path / "grains.csv"
    grains.write_text(GRAINS)
    out = tmp_path / "out.csv"
    s = str(path)
    commands = {
        "mmt invert": ["mmt", "invert", s, "--entry", "ok", "--grains", str(grains),
                       "--out", str(out)],
        "export": ["export", s, "--entry", "ok", "--csv", str(out)],
        "subtract": ["subtract", s, "--in-field", "ok", "--remanent", "other", "--name", "new"],
        "a new entry (background)": ["background", s, "--entry", "ok", "--name", "new",
                                     "--border-um", "1"],
    }
    said = f"{path}: is damaged: the HDF5 global heap collection at byte {at} "
    # one process for them all (each a few seconds of imports on its own): a command that
    # reached the heap would hang it, and the 60 s limit end it
    done = _run(["-c", _IN_TURN, s, json.dumps(list(commands.values())), str(out)])
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(commands), done.stdout
    for command, (code, stderr, unchanged, written) in zip(commands, results, strict=True):
        assert code == 2, (command, stderr)
        assert said in stderr and "Traceback" not in stderr, (command, stderr)
        assert unchanged, command
        assert not written, command
    assert path.read_bytes() == before
    # the Sessions tab opening the file reads its entries so, off the window's thread
    done = _run(["-c", "import sys\nfrom smm_daq.errors import InputError\n"
                       "from smm_daq.storage.nexus import list_entries\n"
                       "try:\n    list_entries(sys.argv[1])\n"
                       "except InputError as exc:\n    print(exc)\n", s])
    assert done.returncode == 0 and said in done.stdout, done.stderr


def test_a_file_is_scanned_once_per_state(tmp_path, monkeypatch):
    """Reads of a file this process wrote, and its further writes, scan it not at all (it
    was checked before each write, and libhdf5 alone wrote it since); a write by another
    program (here h5py) has it scanned again, once for all the reads after it."""
    path = _session(tmp_path / "s.h5")
    scans: list[Path] = []
    real = global_heap.damaged_collection

    def counted(p, *args):
        scans.append(Path(p))
        return real(p, *args)

    monkeypatch.setattr(global_heap, "damaged_collection", counted)
    for _ in range(3):
        assert read_whole(path, lambda f: sorted(f)) == ["ok", "other"]
    with writing(path, create=False) as f:
        f.attrs["note"] = "written here"
    assert read_whole(path, lambda f: str(f.attrs["note"])) == "written here"
    assert scans == []
    with h5py.File(path, "a") as f:
        f.attrs["note"] = "written elsewhere"
    for _ in range(3):
        assert read_whole(path, lambda f: str(f.attrs["note"])) == "written elsewhere"
    assert scans == [path]


def _collection_bytes(size: int) -> bytes:
    """A collection's header and a free space of 0 bytes after it: damaged, as a heap."""
    return b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", size) + bytes(size - HEADER)


@pytest.mark.parametrize("chunks", [None, (4096,)], ids=["contiguous", "chunked"])
def test_a_damaged_heap_copied_into_a_datasets_values_is_no_heap(tmp_path, chunks):
    """A dataset of bytes holding a copy of a damaged collection, 8 kB (a fixture, part of
    another file): its values, not a heap of the file; the file is intact and read. A damaged
    heap of the file's own is still found, by its own offset."""
    path = tmp_path / "copy.h5"
    blob = np.frombuffer(_collection_bytes(8192), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.attrs["s"] = "text"
        f.create_dataset("blob", data=blob, chunks=chunks)
    data = path.read_bytes()
    own, copied = data.find(b"GCOL"), data.rfind(b"GCOL")
    assert own != copied
    check_global_heaps(path)
    assert read_whole(path, lambda f: f["blob"][:16].tobytes()) == blob[:16].tobytes()
    _zeroed_after_header(path, own)
    with pytest.raises(InputError, match=f"collection at byte {own} "):
        check_global_heaps(path)


def test_a_damaged_heap_holding_a_fill_value_is_refused_though_hdf5_hangs_on_it(
        tmp_path, monkeypatch):
    """A text dataset's fill value in the damaged collection: HDF5 asked where the datasets'
    values lie loops as it opens that dataset; that walk is stopped once silent, and the
    file refused."""
    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("text", shape=(4,), dtype=h5py.string_dtype(), fillvalue="none",
                         chunks=(2,))
        f.create_dataset("blob", data=np.frombuffer(_collection_bytes(4096), dtype=np.uint8))
    own = path.read_bytes().find(b"GCOL")
    _zeroed_after_header(path, own)
    # the walk is silent for good once HDF5 hangs (it prints as each dataset is walked, a
    # few milliseconds apart): each of the two walks below waits this long in real time
    monkeypatch.setattr(data_extents, "QUIET_S", 1.0)
    assert data_extents.data_extents(path) is None
    with pytest.raises(InputError, match=f"collection at byte {own} "):
        check_global_heaps(path)


@pytest.mark.timeout(120)
def test_the_sessions_tab_says_a_damaged_heap_and_keeps_the_file_open_before(tmp_path, qtbot):
    """Opening such a file in the window: not opened, said so (the read off the window's
    thread ended, not hung for ever), the file open before still open."""
    from session_reads import opened

    from gui.session_browser import SessionBrowser

    good = _session(tmp_path / "good.h5")
    bad = _session(tmp_path / "bad.h5")
    at = bad.read_bytes().find(b"GCOL")
    _zeroed_after_header(bad, at)
    browser = SessionBrowser()
    qtbot.addWidget(browser)
    assert opened(browser, qtbot, good)
    assert not opened(browser, qtbot, bad)
    assert browser.message.text().startswith(
        f"Not opened: {bad}: is damaged: the HDF5 global heap collection at byte {at} ")
    assert browser.path == good
