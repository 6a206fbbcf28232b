"""Whether two names stand for one file (`same_file`), and one lock key for every name of a
file (`file_key`): a symbolic link, a hard link, a name in another case where the file
system ignores case."""

from __future__ import annotations

import os

import numpy as np
import pytest

from smm_daq.errors import StorageError
from smm_daq.storage import aliases
from smm_daq.storage.aliases import file_key, same_file
from smm_daq.storage.h5file import open_read, writing
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
