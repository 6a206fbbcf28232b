"""Whether two names stand for one file (`same_file`), and one lock key for every name of a
file (`file_key`): a symbolic link, a hard link, a name in another case where the file
system ignores case."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import OrderedDict

import h5py
import numpy as np
import pytest

from smm_daq.clock import VirtualClock
from smm_daq.errors import StorageError
from smm_daq.storage import aliases, turns
from smm_daq.storage.aliases import file_key, same_file
from smm_daq.storage.h5file import marked_open, open_read, writing
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry


def test_names_of_one_file_are_one_file(tmp_path) -> None:
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    a.write_bytes(b"x")
    c.write_bytes(b"x")
    os.link(a, b)
    (tmp_path / "sym.h5").symlink_to(a)
    assert same_file(a, b) and same_file(b, tmp_path / "sym.h5")
    assert same_file(a, tmp_path / "." / "a.h5")
    assert not same_file(a, c)
    assert not same_file(a, tmp_path / "new.h5")  # a name of no file: not an existing one
    assert file_key(b) == file_key(a) == file_key(tmp_path / "sym.h5") != file_key(c)


@pytest.mark.parametrize("ignores_case", [True, False])
def test_new_names_differing_only_in_case_are_one_file_where_case_is_ignored(
        tmp_path, monkeypatch, ignores_case) -> None:
    """Neither exists yet: on macOS and Windows (their default file systems ignore case) the
    two would be one file once written; elsewhere two."""
    monkeypatch.setattr(aliases, "_IGNORES_CASE", ignores_case)
    assert same_file(tmp_path / "Out.csv", tmp_path / "out.csv") == ignores_case
    assert not same_file(tmp_path / "out.csv", tmp_path / "other.csv")


def test_a_write_by_the_thread_reading_the_file_through_a_hard_link_is_refused(
        tmp_path) -> None:
    """The file is read through one name and written, by the same thread, through another:
    refused at once, as through the same name, file unchanged (unfixed: taken for two files,
    the write waited for the thread's own read)."""
    path, link = tmp_path / "s.h5", tmp_path / "link.h5"
    x = np.arange(4) * 1e-5
    write_map_entry(path, MapData(x[None, :] * x[:, None], x, x, name="a"), kind="import")
    os.link(path, link)
    before = path.read_bytes()
    with open_read(path), pytest.raises(StorageError, match="it would wait for itself"), \
            writing(link):
        pass
    assert path.read_bytes() == before
    assert [e.name for e in list_entries(link)] == ["a"]


@pytest.mark.parametrize("how", ["copy swapped in", "first name removed"])
def test_a_name_keeps_its_key_once_its_file_is_swapped_or_its_first_name_goes(
        tmp_path, monkeypatch, how) -> None:
    """The file was keyed first through a hard link, then through its other name: that name
    keeps the key (a lock a thread holds under it) once a copy is swapped in under it (a
    repair's) or the hard link is removed (unfixed: the name got a key of its own, and a
    second thread asking by it a lock of its own while the first wrote)."""
    monkeypatch.setattr(aliases, "_FIRST_NAMES", OrderedDict())
    monkeypatch.setattr(aliases, "_KEY_AT", OrderedDict())
    path, link = tmp_path / "s.h5", tmp_path / "link.h5"
    path.write_bytes(b"x")
    os.link(path, link)
    key = file_key(link)
    assert file_key(path) == key
    if how == "copy swapped in":
        (tmp_path / "copy").write_bytes(b"y")
        os.replace(tmp_path / "copy", path)
    else:
        link.unlink()
    assert file_key(path) == key


def test_a_writer_that_repairs_the_file_holds_it_against_this_process_s_next_writer(
        tmp_path, monkeypatch) -> None:
    """A session file read through a hard link (keyed by that name), then written through
    its own name while a killed writer's mark is on it: the write repairs it, its copy
    swapped in, and writes on; another thread's write of that name waits for it (here on a
    virtual clock, until it gives up) instead of writing the same file at once (unfixed:
    the name keyed anew after the swap, its lock free)."""
    from test_storage_nexus import CRASHING_WRITER, _map

    monkeypatch.setattr(turns, "CLOCK", VirtualClock())
    path, link = tmp_path / "s.h5", tmp_path / "link.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    os.link(path, link)
    # as in a process that has not seen it
    monkeypatch.setattr(aliases, "_FIRST_NAMES", OrderedDict())
    monkeypatch.setattr(aliases, "_KEY_AT", OrderedDict())
    assert [e.name for e in list_entries(link)] == ["earlier"]  # keyed by the link's name
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], check=False)
    assert proc.returncode == -9 and marked_open(path)
    other: list[str] = []

    def write_too() -> None:
        try:
            with writing(path) as f:
                f.attrs["other"] = 1
            other.append("written")
        except StorageError as exc:
            other.append(str(exc))

    with writing(path) as f:
        assert os.stat(path).st_ino != os.stat(link).st_ino  # the repaired copy swapped in
        thread = threading.Thread(target=write_too)
        thread.start()
        thread.join()
        f.attrs["first"] = 1
    assert len(other) == 1 and "another writer has held it" in other[0]
    with h5py.File(path, "r") as f:
        assert "first" in f.attrs and "other" not in f.attrs


def _fresh_keys(monkeypatch, remembered: int) -> None:
    """The key tables as in a process that has keyed nothing yet, `remembered` kept."""
    monkeypatch.setattr(aliases, "_FIRST_NAMES", OrderedDict())
    monkeypatch.setattr(aliases, "_KEY_AT", OrderedDict())
    monkeypatch.setattr(aliases, "_IN_USE", {}, raising=False)
    monkeypatch.setattr(aliases, "_REMEMBERED", remembered, raising=False)


def test_keys_no_lock_holds_are_forgotten_beyond_the_last_asked_and_one_held_never(
        tmp_path, monkeypatch) -> None:
    """A process keying file after file remembers the last few keys no lock holds, not all
    of them; a key held (`keyed`: a lock of its file) is never forgotten, so a name keyed
    through a hard link keeps that key once a copy is swapped in under it, however many
    other files are keyed meanwhile."""
    _fresh_keys(monkeypatch, remembered=4)
    path, link = tmp_path / "s.h5", tmp_path / "link.h5"
    path.write_bytes(b"x")
    os.link(path, link)
    others = [tmp_path / f"o{i}.h5" for i in range(20)]
    for other in others:
        other.write_bytes(b"o")
    with aliases.keyed(link) as key:
        assert file_key(path) == key
        for other in others:
            assert file_key(other) == str(other.resolve())
        assert len(aliases._KEY_AT) == 4 and len(aliases._FIRST_NAMES) == 4
        (tmp_path / "copy").write_bytes(b"y")
        os.replace(tmp_path / "copy", path)
        assert file_key(path) == key
    for other in others:
        file_key(other)
    assert str(link.resolve()) not in aliases._KEY_AT.values()
    assert len(aliases._KEY_AT) == 4 and len(aliases._FIRST_NAMES) == 4


def test_a_writers_lock_is_kept_while_held_and_forgotten_once_no_thread_uses_it(
        tmp_path, monkeypatch) -> None:
    """The writers' locks of this process: the lock of a file a thread writes stays, and
    another thread's write waits for it (here on a virtual clock, until it gives up),
    however many other files are written meanwhile; once no thread writes or waits, no lock
    of any of those files is left (a window open for days writes thousands)."""
    from smm_daq.storage import h5file, here

    monkeypatch.setattr(turns, "CLOCK", VirtualClock())
    monkeypatch.setattr(h5file, "_LOCKS", {})
    _fresh_keys(monkeypatch, remembered=2)
    path = tmp_path / "s.h5"
    held, go = threading.Event(), threading.Event()

    def first() -> None:
        with writing(path) as f:
            f.attrs["by"] = "first"
            held.set()
            assert go.wait(60)

    one = threading.Thread(target=first, daemon=True)
    one.start()
    assert held.wait(60)
    for i in range(6):
        with writing(tmp_path / f"o{i}.h5") as f:
            f.attrs["by"] = "other"
    assert len(h5file._LOCKS) == 1
    with pytest.raises(StorageError, match="another writer has held it"), writing(path) as f:
        f.attrs["by"] = "second"
    go.set()
    one.join(60)
    assert not one.is_alive()
    with h5py.File(path, "r") as f:
        assert f.attrs["by"] == "first"
    assert h5file._LOCKS == {} and here._FILES == {} and aliases._IN_USE == {}
    assert len(aliases._KEY_AT) <= 2
