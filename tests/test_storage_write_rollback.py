"""A write that fails part-way leaves the session file as it was: what it made is deleted,
the root's attributes are put back, and a file that the write itself made is not left
behind, empty; whatever step raised (bad input found late, Ctrl-C)."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from test_storage_nexus import _map

from smm_daq.analysis.optical import ImageRegistration
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError
from smm_daq.storage import nexus, optical_entry, turns
from smm_daq.storage.h5file import writing
from smm_daq.storage.nexus import list_entries, write_map_entry
from smm_daq.storage.optical_entry import write_optical_entry


def _first_pause_held(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """The storage clock made to hold the first pause any waiter takes: `waiting` is set
    there, and it goes on once `go` is set."""
    waiting, go = threading.Event(), threading.Event()

    class HeldClock(VirtualClock):
        def sleep(self, seconds: float) -> None:
            if not waiting.is_set():
                waiting.set()
                assert go.wait(60)
            super().sleep(seconds)

    monkeypatch.setattr(turns, "CLOCK", HeldClock())
    return waiting, go


def _registration() -> ImageRegistration:
    return ImageRegistration(np.array([[1e-6, 0, 0], [0, 1e-6, 0]]), np.zeros((3, 2)),
                             np.zeros((3, 2)), 0.0)


def _root(path) -> tuple[list[str], dict[str, object]]:
    with h5py.File(path, "r") as f:
        return list(f), {k: np.asarray(v).tolist() for k, v in f.attrs.items()}


def test_bad_input_found_part_way_into_a_new_file_leaves_no_file(tmp_path):
    path = tmp_path / "new.h5"
    with pytest.raises(InputError, match="extra 'results/odd' is of type object"):
        write_map_entry(path, _map("m"), kind="subtract", extra={"results/odd": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_entry_interrupted_once_moved_in_is_taken_out_again(tmp_path, monkeypatch, overwrite):
    """Ctrl-C after the entry got its name and before the write ended: the file is as it was,
    the root's `default` naming the entry it named."""
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="scan")
    if overwrite:
        write_map_entry(path, _map("m"), kind="subtract")
    write_map_entry(path, _map("last"), kind="scan")
    before = _root(path)
    real = nexus.put_in

    def put_in_then_interrupted(*args, **kw):
        real(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(nexus, "put_in", put_in_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_map_entry(path, _map("m", ny=2), kind="subtract", overwrite=overwrite)
    names, attrs = _root(path)
    assert (sorted(names), attrs) == (sorted(before[0]), before[1])
    # an overwrite swapped in whole before the interruption is kept (never neither entry)
    assert sorted(e.name for e in list_entries(path)) == (
        ["first", "last", "m"] if overwrite else ["first", "last"])


def test_a_write_that_raises_leaves_the_roots_names_and_attributes_as_they_were(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="scan")
    before = _root(path)
    with pytest.raises(RuntimeError, match="late"), writing(path) as f:
        f.create_group("half")
        f["soft"] = h5py.SoftLink("/first")
        f.attrs["default"] = "half"
        f.attrs["note"] = "added"
        raise RuntimeError("late")
    assert _root(path) == before


def test_an_image_interrupted_once_moved_in_is_taken_out_again(tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="scan")
    before = _root(path)

    def put_in_then_interrupted(*args, **kw):
        real(*args, **kw)
        raise KeyboardInterrupt

    real = optical_entry.put_in
    monkeypatch.setattr(optical_entry, "put_in", put_in_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_optical_entry(path, "photo", np.zeros((2, 3, 3), np.uint8), _registration())
    assert _root(path) == before


def test_a_writer_waiting_for_a_new_file_whose_failed_write_removed_it_makes_it_again(
        tmp_path, monkeypatch):
    """Two writers of a file not made yet: the first makes it and fails, and its empty file
    is removed while the second waits for it; the second makes it again and writes, as it
    would have made it had it come first (not an OS error's traceback, nor a write unlocked)."""
    path = tmp_path / "new.h5"
    waiting, go = _first_pause_held(monkeypatch)  # the second writer's
    first_in, out = threading.Event(), []

    def first() -> None:
        with pytest.raises(RuntimeError, match="late"), writing(path):
            first_in.set()
            assert waiting.wait(60)  # the second writer waits for this one
            raise RuntimeError("late")
        out.append("first undone")

    def second() -> None:
        try:
            with writing(path) as f:
                f.attrs["note"] = "second"
            out.append("second written")
        except BaseException as exc:  # handed to the test
            out.append(exc)

    one = threading.Thread(target=first, daemon=True)
    one.start()
    assert first_in.wait(60)
    two = threading.Thread(target=second, daemon=True)
    two.start()
    one.join(60)
    go.set()
    two.join(60)
    assert out == ["first undone", "second written"]
    assert _root(path)[1]["note"] == "second"


def test_ctrl_c_while_a_failed_write_is_undone_leaves_the_roots_default_naming_an_entry(
        tmp_path, monkeypatch):
    """Ctrl-C again while the write's failure is being undone: the root's `default` still
    leads to a plot (the write's own entry, not yet deleted, or the one before), never to an
    entry gone."""
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="scan")

    def interrupted(self, name, *args, **kw):  # Ctrl-C as the attributes are put back
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), writing(path) as f:
        f.create_group("new")
        f.attrs["default"] = "new"
        for put in ("create", "modify"):  # made again, or written again in place
            monkeypatch.setattr(h5py.AttributeManager, put, interrupted)
        raise RuntimeError("late")
    monkeypatch.undo()
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] in f


def test_a_failed_write_whose_file_then_fails_to_close_says_the_writes_own_error(
        tmp_path, monkeypatch, caplog):
    """The close after a failed write fails too (the disk gone): the error is the write's
    own, and the close's failure is said beside it, not in its place."""
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="scan")
    real = h5py.File.close

    def fails_once(self) -> None:
        monkeypatch.setattr(h5py.File, "close", real)
        real(self)
        raise OSError("Can't close file (file write failed)")

    with pytest.raises(RuntimeError, match="late"), writing(path) as f:
        f.create_group("half")
        monkeypatch.setattr(h5py.File, "close", fails_once)
        raise RuntimeError("late")
    assert "Can't close file" in caplog.text
    assert _root(path)[0] == ["first"]


def test_a_reader_waiting_for_a_new_file_whose_failed_write_removed_it_is_told_it_is_gone(
        tmp_path, monkeypatch):
    """A read of a new file that waited for its first write, which failed and removed the
    file, says the file is not there: not that it is corrupt or not HDF5."""
    from smm_daq.storage.h5file import open_read

    path = tmp_path / "new.h5"
    waiting, go = _first_pause_held(monkeypatch)  # the reader's
    writer_in, out = threading.Event(), []

    def write() -> None:
        with pytest.raises(RuntimeError, match="late"), writing(path):
            writer_in.set()
            assert waiting.wait(60)  # the reader waits for this write
            raise RuntimeError("late")

    def read() -> None:
        try:
            with open_read(path) as f:
                out.append(list(f))
        except BaseException as exc:  # handed to the test
            out.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert writer_in.wait(60)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    writer.join(60)
    go.set()
    reader.join(60)
    assert isinstance(out[0], InputError)
    assert "file not found" in str(out[0]) and "corrupt" not in str(out[0])


def test_a_write_refused_as_replaced_removes_the_empty_file_it_made(tmp_path):
    """The file a write is to stand for was moved away: the write makes none in its place
    that outlives the refusal (the name is free again, as it was)."""
    from smm_daq.storage.h5file import Replaced, file_id

    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="scan")
    with writing(path) as f:
        written = file_id(f)
    path.rename(tmp_path / "moved.h5")
    with pytest.raises(Replaced, match="was replaced"), writing(path, same_file=written):
        pytest.fail("written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved.h5"]


def test_a_write_refused_as_another_programs_file_removes_the_empty_file_it_made(
        tmp_path, monkeypatch):
    """A 'current' link to no file yet: the write makes the file it names, and the link is
    re-pointed to another program's file before the write has its lock. The refusal leaves
    that file byte for byte and removes the empty one the write made."""
    from smm_daq.storage import h5file

    link, made, foreign = tmp_path / "current.h5", tmp_path / "new.h5", tmp_path / "other.h5"
    link.symlink_to(made.name)
    with h5py.File(foreign, "w") as f:
        f.attrs["creator"] = "another program"
        f["x"] = np.arange(3)
    before = foreign.read_bytes()
    create = h5file._create

    def then_repointed(p):
        done = create(p)
        link.unlink()
        link.symlink_to(foreign.name)
        return done

    monkeypatch.setattr(h5file, "_create", then_repointed)
    with pytest.raises(InputError, match="is not an smm-daq session file"), writing(link):
        pytest.fail("written")
    assert not made.exists() and foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.h5", "other.h5"]


def test_a_failed_write_lets_go_of_the_file_written_before_it_removes_the_one_it_made(
        tmp_path, monkeypatch):
    """A 'current' link re-pointed, after the write made the file it named, to a session
    file that the write then locks and fails in: the file made is removed under its own
    lock, which may be waited for (another writer at it). Meanwhile the file written is
    free: a scan's next line to it is not held up, nor refused once the wait passes
    `turns.TURN_WAIT_S` (here at once, on a virtual clock)."""
    from smm_daq.storage import h5file

    monkeypatch.setattr(turns, "CLOCK", VirtualClock())
    link, made, current = tmp_path / "current.h5", tmp_path / "new.h5", tmp_path / "run.h5"
    link.symlink_to(made.name)
    write_map_entry(current, _map("first"), kind="scan")
    create, file_lock = h5file._create, h5file._file_lock
    meanwhile: list[BaseException | None] = []

    def then_repointed(p):
        done = create(p)
        link.unlink()
        link.symlink_to(current.name)
        return done

    def write_current() -> None:
        try:
            write_map_entry(current, _map("next"), kind="scan")
            meanwhile.append(None)
        except BaseException as exc:  # what the test reports
            meanwhile.append(exc)

    def lock_made_after_a_write_of_current(path, **kwargs):
        if path == made and not meanwhile:  # the failed write about to remove its file
            other = threading.Thread(target=write_current)
            other.start()
            other.join(60)
        return file_lock(path, **kwargs)

    monkeypatch.setattr(h5file, "_create", then_repointed)
    monkeypatch.setattr(h5file, "_file_lock", lock_made_after_a_write_of_current)
    with pytest.raises(RuntimeError, match="cut short"), writing(link):
        raise RuntimeError("cut short")
    assert meanwhile == [None]
    assert not made.exists()
    assert [e.name for e in list_entries(current)] == ["first", "next"]


def _another_process_writes_as_it_is_removed(monkeypatch, path) -> None:
    """Another process writing an entry into the file `path` just before this one's unlink
    of it (no lock keeps it out)."""
    from pathlib import Path

    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self == path:
            with h5py.File(path, "r+", locking=False) as f:
                f.create_group("theirs")
        real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
def test_a_failed_write_leaves_the_file_it_made_where_no_lock_keeps_other_writers_out(
        tmp_path, monkeypatch, caplog):
    """A file system without locks (some NFS): between the look that finds the new file
    empty and its removal, another process may write its entry into it; the file is left
    (empty, and said so) rather than removed with that entry."""
    import errno

    path = tmp_path / "new.h5"

    def no_locks(fd, source, *args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(turns, "hold_for_writing", no_locks)
    _another_process_writes_as_it_is_removed(monkeypatch, path)
    with pytest.raises(RuntimeError, match="late"), writing(path) as f:
        f.create_group("mine")
        raise RuntimeError("late")
    assert path.exists(), "removed, with what another process wrote into it meanwhile"
    assert _root(path)[0] == []  # left, holding nothing of the failed write
    assert "no locks to keep other writers out" in caplog.text


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
def test_a_write_refused_the_lock_of_the_file_it_made_removes_it_unless_another_writes_it(
        tmp_path, monkeypatch):
    """Ctrl-C while the write asks for the lock of the file it just made: the file goes, as
    after any other refusal. Another writer holding that file longer than
    `turns.TURN_WAIT_S` (here at once, on a virtual clock): the file is that writer's, and
    stays."""
    import os

    from smm_daq.errors import StorageError
    from smm_daq.storage import h5file

    path = tmp_path / "new.h5"
    real_hold = turns.hold_for_writing

    def ctrl_c(fd, source, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(turns, "hold_for_writing", ctrl_c)
    with pytest.raises(KeyboardInterrupt), writing(path):
        pytest.fail("written")
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(turns, "hold_for_writing", real_hold)
    monkeypatch.setattr(turns, "CLOCK", VirtualClock())
    create, other = h5file._create, []

    def then_held_by_another(p):
        done = create(p)
        other.append(os.open(path, os.O_RDWR))  # another process's writer, at it from now on
        assert turns.hold_for_writing(other[0], str(path))
        return done

    monkeypatch.setattr(h5file, "_create", then_held_by_another)
    try:
        with pytest.raises(StorageError, match="another writer has held it"), writing(path):
            pytest.fail("written")
        assert path.exists()
    finally:
        os.close(other[0])
