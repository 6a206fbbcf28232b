"""A copy swapped in under a file's name (a repair's, a rebuild's: written beside it, then
`os.replace`) while a reader or a writer waits for the file: the waiter ends up holding the
lock of the file now there, not of the one replaced, which nobody reads or writes any more.
Waits run on a virtual clock: nothing sleeps."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator

import h5py
import pytest
from test_storage_nexus import _map

from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import turns
from smm_daq.storage.h5file import open_read, writing
from smm_daq.storage.nexus import write_map_entry

pytestmark = pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")


class _Swapper:
    """Another process's writer holding the file (its lock taken on a descriptor of its own),
    which swaps a copy in under the name, the copy's lock taken first, and lets the replaced
    file go: on a waiter's pause on `turns.CLOCK`, the first `times` pauses."""

    def __init__(self, path: os.PathLike[str], times: int) -> None:
        self.path, self.left, self.swaps = path, times, 0
        self.fd = self._held(path)

    @staticmethod
    def _held(path: os.PathLike[str]) -> int:
        fd = os.open(path, os.O_RDWR)
        assert turns.hold_for_writing(fd, str(path))
        return fd

    def swap(self) -> None:
        if self.left <= 0:
            return
        self.left -= 1
        copy = f"{self.path}.copy"
        shutil.copyfile(self.path, copy)
        # the last copy is let go with the one it replaced: the waiter can then have it
        held = self._held(copy) if self.left else None
        os.replace(copy, self.path)
        os.close(self.fd)  # the replaced file's lock goes with it
        self.fd = held if held is not None else -1
        self.swaps += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


class _SwappingClock(VirtualClock):
    def __init__(self, on_pause: Callable[[], None]) -> None:
        super().__init__()
        self.on_pause = on_pause

    def sleep(self, seconds: float) -> None:
        self.on_pause()
        super().sleep(seconds)


@pytest.fixture
def path(tmp_path):
    made = tmp_path / "s.h5"
    write_map_entry(made, _map("earlier"), kind="scan")
    return made


@contextlib.contextmanager
def _swapping(path, monkeypatch, times: int) -> Iterator[_Swapper]:
    swapper = _Swapper(path, times)
    monkeypatch.setattr(turns, "CLOCK", _SwappingClock(swapper.swap))
    try:
        yield swapper
    finally:
        swapper.close()


def _locked_by_another(path) -> bool:
    """Whether a reader or writer other than this probe holds the file `path` names now."""
    probe = os.open(path, os.O_RDWR)
    try:
        return not turns._attempt(probe, fcntl.F_WRLCK, turns.DATA)
    finally:
        os.close(probe)


@pytest.mark.parametrize("kind", ["writer", "reader"])
def test_a_waiter_holds_the_lock_of_the_copy_swapped_in_while_it_waited(
        path, monkeypatch, kind):
    with _swapping(path, monkeypatch, times=1) as swapper:
        opened = writing(path) if kind == "writer" else open_read(path)
        with opened as f:
            assert swapper.swaps == 1  # it waited, and the copy came in meanwhile
            assert _locked_by_another(path), f"the {kind} holds the replaced file's lock"
            assert list(f) == ["earlier"]
            if kind == "writer":
                f.attrs["touched"] = 1
        assert not _locked_by_another(path)
    with h5py.File(path, "r") as f:
        assert list(f) == ["earlier"]
        assert ("touched" in f.attrs) == (kind == "writer")


@pytest.mark.parametrize("kind", ["writer", "reader"])
def test_a_file_replaced_again_and_again_while_waited_for_is_refused_clearly(
        path, monkeypatch, kind):
    error = StorageError if kind == "writer" else InputError
    opened = writing(path) if kind == "writer" else open_read(path)
    with _swapping(path, monkeypatch, times=100) as swapper, pytest.raises(error) as raised, \
            opened:
        pass
    assert 1 < swapper.swaps < 100  # a few tries, then given up
    message = str(raised.value)
    assert f"{path}: was replaced by a rebuilt copy" in message and "try again" in message
    if kind == "writer":
        assert "nothing was written" in message

