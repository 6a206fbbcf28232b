"""A copy swapped in under a file's name (a repair's, a rebuild's: written beside it, then
`os.replace`) while a reader or a writer waits for the file: the waiter ends up holding the
lock of the file now there, not of the one replaced, which nobody reads or writes any more.
A scan whose file was replaced mid-scan (moved and another put in its place, a link
re-pointed) stops saying so and writes nothing into the file now there. Waits run on a
virtual clock: nothing sleeps."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig
from test_storage_nexus import _map

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import turns
from smm_daq.storage.h5file import marked_open, open_read, text, writing
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


def test_a_writer_that_repairs_the_file_on_the_way_holds_the_copy_it_writes(path) -> None:
    """A write of a file a killed writer left marked open repairs it first, swapping its copy
    in, then writes the copy: held all along, so another process's writer or reader arriving
    meanwhile waits (unfixed: the copy's lock was free, the old file's alone held)."""
    from test_storage_nexus import CRASHING_WRITER

    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], check=False)
    assert proc.returncode == -9 and marked_open(path)
    before = os.stat(path).st_ino
    with writing(path) as f:
        assert os.stat(path).st_ino != before  # the repaired copy swapped in
        assert _locked_by_another(path), "the copy is written unlocked"
        f.attrs["touched"] = 1
    assert not _locked_by_another(path)
    with h5py.File(path, "r") as f:
        assert set(f) == {"earlier", "scan"} and "touched" in f.attrs


NY = 6


def _moved_and_copied_back(path, moved):
    path.rename(moved)
    shutil.copyfile(moved, path)  # another file in its place, as the scan's was


def _link_repointed(link, moved):
    other = link.with_name("other.h5")
    shutil.copyfile(link.resolve(), other)  # the same lines, so far: another file
    link.unlink()
    link.symlink_to(other)


@pytest.mark.parametrize("replace", [_moved_and_copied_back, _link_repointed])
def test_a_scan_whose_file_is_replaced_mid_scan_stops_and_writes_nothing_into_the_new_one(
        tmp_path, replace):
    path = tmp_path / "s.h5"
    scanned = tmp_path / "elsewhere.h5"
    if replace is _link_repointed:
        write_map_entry(scanned, _map("earlier"), kind="scan")
        path.symlink_to(scanned)  # the scan writes through a link; the link is re-pointed
    plan = ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6)
    assert plan.ny == NY
    seq = Sequencer(fake_rig(), path, plan)
    there: list[bytes] = []

    def replace_after_line_2(event):
        if event.kind == "line_done" and event.line == 2:
            replace(path, scanned)
            there.append(path.read_bytes())

    seq.subscribe(replace_after_line_2)
    assert seq.run() == "failed"
    assert "the file was replaced" in seq.message
    assert "the lines stored before are in the file that was there" in seq.message
    assert "the lines stored before are kept" not in seq.message  # not in the file there
    assert path.read_bytes() == there[0]  # nothing written into the file now there
    with h5py.File(scanned, "r") as f:
        assert text(f["k/status"]) == "interrupted"  # as the file says of a scan cut off
        done = f["k/data/line_done"][()].astype(bool)
        assert done.tolist() == [True, True, True, False, False, False]
        assert np.isfinite(f["k/data/Bz"][()][done]).all()
