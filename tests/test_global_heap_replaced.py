"""A file replaced by an outside tool between the global heap check and HDF5's open (a tool
renaming its own copy over it; `cp damaged.h5 session.h5` writing over it in place, as a
writer's look or a repair opens it) is judged again as HDF5 opens it: the verdict of the file
checked is not taken for the file opened. Which file HDF5 opened is read from its own
descriptor, so the window between the check and the open is closed, not narrowed. Whether
this reads or writes, the damaged file is refused, before anything reads its heap, and left
as it was. A read's open of the file it checked stands where a writer has written it since
(a copy written over it in place in that moment is the one case left); a write's open of
another file renamed over it is refused, not written."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
from test_global_heap_damage import HEADER, _session

from smm_daq.errors import InputError
from smm_daq.storage import global_heap, h5file
from smm_daq.storage.h5file import open_read, read_whole, writing


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


def test_a_reader_judges_again_the_file_hdf5_opened(replaced_at_open):
    path, damaged = replaced_at_open("renamed over", "File")
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
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import global_heap
from smm_daq.storage.h5file import repair, writing

path, how, opener = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
damaged = Path(sys.argv[5]).read_bytes()
global_heap.data_extents = lambda p: None  # not asked of HDF5
owner = h5py if opener == "File" else h5py.h5f
real = getattr(owner, opener)

def then_replaced(name, *args, **kwargs):
    for_writing = opener == "File" or args[0] & h5py.h5f.ACC_RDWR  # not a look's open
    if (Path(os.fsdecode(name)) == path and for_writing
            and not getattr(then_replaced, "done", False)):
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
except (InputError, StorageError) as exc:
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
    if opener == "open":  # not the file locked and readied: refused as another, unread
        assert done.stdout == (f"{path}: the file was replaced while being opened (another "
                               "file renamed over it); nothing was written\n")
    else:
        assert f"{path}: is damaged: the HDF5 global heap collection at byte {at} " in done.stdout
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.bin", "s.h5"]


def _written_after_each_check(path: Path, monkeypatch: pytest.MonkeyPatch, how: str
                              ) -> list[Path]:
    """Each heap check of `path` by a reader, followed at once by another process's work on
    it (its times moved on by a write; or, once, an intact copy renamed over it): the
    checks made."""
    real = h5file.check_global_heaps
    checks: list[Path] = []

    def then_written(p, *args, **kwargs):  # type: ignore[no-untyped-def]
        judged = real(p, *args, **kwargs)
        if Path(p) == path:
            checks.append(path)
            if how == "written":  # a scan's line: the same file, written
                st = os.stat(path)
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            elif len(checks) == 1:  # another file in its place
                copy = path.with_name("copy.h5")
                copy.write_bytes(path.read_bytes())
                os.replace(copy, path)
        return judged

    monkeypatch.setattr(h5file, "check_global_heaps", then_written)
    return checks


def test_a_file_written_between_each_check_and_open_is_read(tmp_path, monkeypatch):
    """Where no lock keeps another process's writer out (or its write lands before the
    readers' lock is held), a scan writing more often than a check reads the file whole
    (seconds a gigabyte) may write it between each check and each open: HDF5's open of the
    file checked stands, the verdict of its check kept, and it is read, not checked again
    nor refused."""
    path = _session(tmp_path / "s.h5")
    checks = _written_after_each_check(path, monkeypatch, "written")
    assert sorted(read_whole(path, lambda f: list(f))) == ["ok", "other"]
    assert len(checks) == 1  # read at its first open, not judged again


def test_a_file_renamed_over_between_the_check_and_the_open_is_judged_again(tmp_path,
                                                                            monkeypatch):
    path = _session(tmp_path / "s.h5")
    checks = _written_after_each_check(path, monkeypatch, "renamed over")
    assert sorted(read_whole(path, lambda f: list(f))) == ["ok", "other"]
    assert len(checks) == 2  # the file opened, another than the one checked, checked too


@pytest.mark.parametrize("when", ["as it is opened", "as room is reserved"])
def test_a_write_refuses_a_file_renamed_over_the_one_readied(tmp_path, monkeypatch, when):
    """A file renamed over the one locked and readied (whose name it stands for, whose file
    it is, a repair of one left marked open) is another, none of whose checks were made: the
    write is refused, neither file written, and the one there now not taken for judged
    intact (it was never checked)."""
    path = _session(tmp_path / "s.h5")
    other = _session(tmp_path / "other.h5").read_bytes()
    done: list[bool] = []

    def renamed_over() -> None:
        if not done:
            done.append(True)
            _replace(path, other, "renamed over")

    if when == "as it is opened":
        real_open = h5py.h5f.open

        def then_opened(name, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
            if Path(os.fsdecode(name)) == path and flags & h5py.h5f.ACC_RDWR:
                renamed_over()
            return real_open(name, flags, *args, **kwargs)

        monkeypatch.setattr(h5file.h5py.h5f, "open", then_opened)
    else:
        real_reserve = h5file._reserve_room

        def then_reserved(*args, **kwargs):  # type: ignore[no-untyped-def]
            real_reserve(*args, **kwargs)
            renamed_over()

        monkeypatch.setattr(h5file, "_reserve_room", then_reserved)
    with pytest.raises(h5file.Replaced, match="the file was replaced while being opened "
                                              r"\(another file renamed over it\); nothing "
                                              "was written"), writing(path, create=False) as f:
        f.attrs["note"] = "never written"
    assert done
    assert path.read_bytes() == other
    assert not global_heap.judged_intact(path)


def test_a_writer_remembers_as_intact_only_the_file_it_checked(tmp_path):
    """A writer remembers the file it wrote as intact where it is the file it checked: one
    renamed over it since was never checked."""
    path = _session(tmp_path / "s.h5")
    checked = global_heap.check_global_heaps(path)
    _replace(path, _session(tmp_path / "other.h5").read_bytes(), "renamed over")
    global_heap.written(path, checked)
    assert not global_heap.judged_intact(path)
    global_heap.written(path, global_heap.check_global_heaps(path))
    assert global_heap.judged_intact(path)


def test_a_look_at_a_file_written_between_each_check_and_open_stands(tmp_path, monkeypatch):
    """The short look at whose file it is (an existing --out file's, as a command starts),
    of a file a scan in another process writes more often than a check reads it whole: the
    same file opened at each try, written since its check, is looked at, not refused as
    replaced."""
    path = _session(tmp_path / "s.h5")
    checks = _written_after_each_check(path, monkeypatch, "written")
    h5file.require_ours(path)
    assert len(checks) == h5file._OPENS  # judged again while the state it opened might do


def test_a_write_does_not_take_a_file_renamed_over_it_meanwhile_for_intact(tmp_path,
                                                                          monkeypatch):
    """A damaged copy renamed over the file while a write holds it open (a long scan's) is
    not the file libhdf5 wrote: it is not remembered as intact as the write ends, so a
    later read or write of it in this process (the window's, beside the scan) checks it
    and refuses it, never handing it to HDF5."""
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)  # not asked of HDF5
    path = _session(tmp_path / "s.h5")
    damaged = _damaged_copy(path)
    with writing(path, create=False) as f:
        f.attrs["note"] = "written"
        _replace(path, damaged, "renamed over")
    assert path.read_bytes() == damaged
    assert not global_heap.judged_intact(path)
    with pytest.raises(InputError, match="is damaged: the HDF5 global heap collection"):
        h5file.check_heaps(path)
