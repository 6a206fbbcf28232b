"""A file replaced by an outside tool between the global heap check and HDF5's open (`cp
damaged.h5 session.h5` writing over it in place, or a tool renaming its own copy over it) is
judged again as HDF5 opens it: the verdict of the state checked is not taken for the state
opened. The state HDF5 opened is read from its own descriptor, so the window between the check
and the open is closed, not narrowed. Whether this reads or writes, the damaged file is
refused, before anything reads its heap, and left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
from test_global_heap_damage import HEADER, _session

from smm_daq.errors import InputError
from smm_daq.storage import global_heap, h5file
from smm_daq.storage.h5file import open_read, read_whole


def _damaged_copy(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    at = data.find(b"GCOL")
    data[at + HEADER:at + HEADER + 16] = bytes(16)  # its first object: a free space of 0 bytes
    return bytes(data)


def _replace(path: Path, data: bytes, how: str) -> None:
    if how == "copied over":  # cp: the same file written again, its time of change moved on
        st = os.stat(path)
        with open(path, "r+b") as fh:
            fh.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    else:  # a tool's copy renamed over it (h5repack's output, moved in place)
        copy = path.with_name("copy.h5")
        copy.write_bytes(data)
        os.replace(copy, path)


@pytest.fixture
def replaced_at_open(tmp_path, monkeypatch):
    """The session file, judged intact (as this process wrote it), and what replaces it
    with a damaged copy the first time HDF5 is about to open it: (path, bytes put there,
    how)."""

    def arm(how: str, opener: str) -> tuple[Path, bytes]:
        path = _session(tmp_path / "s.h5")
        assert global_heap.judged_intact(path)
        damaged = _damaged_copy(path)
        real = getattr(h5py, opener) if opener == "File" else h5py.h5f.open
        done: list[bool] = []

        def then_replaced(name, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not done and Path(os.fsdecode(name)) == path:
                done.append(True)
                _replace(path, damaged, how)
            return real(name, *args, **kwargs)

        if opener == "File":
            monkeypatch.setattr(h5file.h5py, "File", then_replaced)
        else:
            monkeypatch.setattr(h5file.h5py.h5f, "open", then_replaced)
        monkeypatch.setattr(global_heap, "data_extents", lambda p: None)  # not asked of HDF5
        return path, damaged

    return arm


@pytest.mark.parametrize("how", ["copied over", "renamed over"])
def test_a_reader_judges_again_the_file_hdf5_opened(replaced_at_open, how):
    path, damaged = replaced_at_open(how, "File")
    at = damaged.find(b"GCOL")
    with pytest.raises(InputError, match=f"is damaged: the HDF5 global heap collection at "
                                         f"byte {at} "), open_read(path):
        pytest.fail("opened")
    assert path.read_bytes() == damaged
    with pytest.raises(InputError, match="is damaged"):
        read_whole(path, lambda f: list(f))


_WRITE = """
import os, sys
from pathlib import Path
import h5py
sys.path.insert(0, sys.argv[4])
from test_global_heap_replaced import _replace
from smm_daq.errors import InputError
from smm_daq.storage import global_heap
from smm_daq.storage.h5file import repair, writing

path, how, opener = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
damaged = Path(sys.argv[5]).read_bytes()
global_heap.data_extents = lambda p: None  # not asked of HDF5
owner = h5py if opener == "File" else h5py.h5f
real = getattr(owner, opener)

def then_replaced(name, *args, **kwargs):
    if Path(os.fsdecode(name)) == path and not getattr(then_replaced, "done", False):
        then_replaced.done = True
        _replace(path, damaged, how)
    return real(name, *args, **kwargs)

setattr(owner, opener, then_replaced)
try:
    if sys.argv[6] == "repair":
        repair(path)
    else:
        with writing(path, create=False) as f:
            f.attrs["note"] = "never written"
except InputError as exc:
    print(exc)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("how", "opener", "work"), [
    ("copied over", "File", "write"), ("renamed over", "File", "write"),
    ("renamed over", "open", "write"), ("copied over", "File", "repair"),
    ("renamed over", "File", "repair")],
    ids=["copied-over-at-the-look", "renamed-over-at-the-look",
         "renamed-over-at-the-open-for-writing", "copied-over-as-a-repair-opens-it",
         "renamed-over-as-a-repair-opens-it"])
def test_a_writer_judges_again_the_file_hdf5_opened(tmp_path, how, opener, work):
    """Replaced as the write looks whose file it is (a read-only open), or as it opens it
    for writing, or as a repair opens it to rebuild it: refused, nothing written. In a
    process of its own, given up after 60 s: HDF5 reading the damaged heap would never
    return."""
    import subprocess
    import sys

    path = _session(tmp_path / "s.h5")
    damaged = _damaged_copy(path)
    (tmp_path / "damaged.bin").write_bytes(damaged)
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": str(tests.parent)}
    done = subprocess.run([sys.executable, "-c", _WRITE, str(path), how, opener, str(tests),
                           str(tmp_path / "damaged.bin"), work],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    at = damaged.find(b"GCOL")
    assert f"{path}: is damaged: the HDF5 global heap collection at byte {at} " in done.stdout
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.bin", "s.h5"]


def test_a_file_written_at_each_open_is_read_again_not_refused(tmp_path, monkeypatch):
    """Where no lock keeps a writer out (a file system without locks), a scan's lines may
    land between each check and each open: the read is told to read again (`read_whole`
    does), never that the file is damaged or replaced."""
    from smm_daq.storage.h5file import WrittenMeanwhile

    path = _session(tmp_path / "s.h5")
    real = h5py.File
    opens: list[Path] = []

    def written_as_opened(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(os.fsdecode(name)) == path:
            opens.append(path)
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(h5file.h5py, "File", written_as_opened)
    with pytest.raises(WrittenMeanwhile, match="read it again"):
        read_whole(path, lambda f: list(f))
    assert len(opens) == 3 * 3  # each of its reads opened it as often as it checks
