"""Which file a scan writes: its session file's identity token, and its inode number where
the file system keeps one. A file system that shows the same file under new numbers (CIFS
mounted `noserverino`, an NFS share mounted again, a FUSE file system) does not stop a scan
as if its file were replaced, nor hold up its readers and writers; a file made where the
scan's was deleted is told apart even with the same inode number. Such file systems are
simulated: their type in the mount table and their numbers in os.stat/os.fstat patched."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig
from test_storage_nexus import _map
from test_storage_swapped_in import _locked_by_another, _SwappingClock

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import identity, turns
from smm_daq.storage.h5file import open_read, repair, text, writing
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.scan_entry import ScanEntryWriter
from smm_daq.storage.superblock import lookup3

NY = 6


def _plan() -> ScanPlan:
    plan = ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6)
    assert plan.ny == NY
    return plan


class _Shown:
    """A stat result as the simulated file system shows it: other numbers, all else as is."""

    def __init__(self, real: os.stat_result, device: int, inode: int) -> None:
        self._real, self.st_dev, self.st_ino = real, device, inode

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


class _Mount:
    """The file system of the tests' files as a mount of `kind` that shows each file under
    new numbers after each `renumber` (every look, with `every_look`): its inode numbers
    (`moved="inode"`, CIFS `noserverino`, FUSE) or its device (`moved="device"`, an NFS
    share mounted again)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, device: int, kind: str, moved: str,
                 every_look: bool = False) -> None:
        self.device, self.moved, self.every_look, self.generation = device, moved, every_look, 0
        self.aliases: dict[tuple[int, int], tuple[int, int]] = {}
        monkeypatch.setattr(identity, "_KEPT", {}, raising=False)
        monkeypatch.setattr(turns, "_LOCAL", {})
        monkeypatch.setattr(turns, "file_system_type", lambda device: kind)
        real_stat, real_fstat = os.stat, os.fstat
        monkeypatch.setattr(os, "stat", lambda *a, **k: self.show(real_stat(*a, **k)))
        monkeypatch.setattr(os, "fstat", lambda fd: self.show(real_fstat(fd)))

    def renumber(self) -> None:
        self.generation += 1

    def show(self, st: os.stat_result) -> os.stat_result | _Shown:
        if st.st_dev != self.device:
            return st
        device, inode = self.aliases.get((st.st_dev, st.st_ino), (st.st_dev, st.st_ino))
        if self.every_look:
            self.renumber()
        if self.moved == "device":
            return _Shown(st, device + self.generation, inode)
        return _Shown(st, device, inode + 1_000_003 * self.generation)


@pytest.mark.parametrize(("kind", "moved"), [("cifs", "inode"), ("nfs4", "device"),
                                             ("fuse.sshfs", "inode")])
def test_a_scan_goes_on_where_its_file_is_shown_under_new_numbers_between_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, moved: str) -> None:
    path = tmp_path / "s.h5"
    mount = _Mount(monkeypatch, os.stat(tmp_path).st_dev, kind, moved)
    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(lambda e: mount.renumber() if e.kind == "line_done" else None)
    assert seq.run() == "finished", seq.message
    assert mount.generation >= NY
    with h5py.File(path, "r") as f:
        assert text(f["k/status"]) == "finished"
        assert f["k/data/line_done"][()].all() and np.isfinite(f["k/data/Bz"][()]).all()


def test_a_file_made_where_the_scans_was_deleted_is_not_written_with_the_same_inode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ext4 hands a deleted file's inode number to the next file made: forced here."""
    path = tmp_path / "s.h5"
    mount = _Mount(monkeypatch, os.stat(tmp_path).st_dev, "ext4", "inode")
    there: list[bytes] = []

    def delete_and_make_another_after_line_2(event: object) -> None:
        if event.kind == "line_done" and event.line == 2:
            old = os.stat(path)
            path.unlink()
            write_map_entry(path, _map("other"), kind="scan")  # another session's file
            new = os.stat(path)
            mount.aliases[(new.st_dev, new.st_ino)] = (old.st_dev, old.st_ino)
            assert os.stat(path).st_ino == old.st_ino  # the same number
            there.append(path.read_bytes())

    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(delete_and_make_another_after_line_2)
    assert seq.run() == "failed"
    assert "the file was replaced" in seq.message
    assert path.read_bytes() == there[0]  # nothing written into the file made there


def test_an_earlier_copy_put_in_place_where_numbers_tell_nothing_is_not_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a network share a copy holds the file's token and counts as the file (no inode
    number to tell): one taken two lines ago (a backup put back) lacks lines the scan
    stored, and the scan stops rather than finish in it with those lines missing."""
    path = tmp_path / "s.h5"
    backup = tmp_path / "backup.h5"
    _Mount(monkeypatch, os.stat(tmp_path).st_dev, "cifs", "inode")
    there: list[bytes] = []

    def copy_after_line_1_put_back_after_line_3(event: object) -> None:
        if event.kind == "line_done" and event.line == 1:
            shutil.copyfile(path, backup)
        if event.kind == "line_done" and event.line == 3:
            os.replace(backup, path)
            there.append(path.read_bytes())

    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(copy_after_line_1_put_back_after_line_3)
    assert seq.run() == "failed"
    assert "lacks line(s) 2, 3 of entry 'k'" in seq.message, seq.message
    assert path.read_bytes() == there[0]  # nothing written into the copy


def _mark_open(path: Path) -> None:
    """The superblock's open-for-write mark set, as a writer killed in SWMR mode leaves it."""
    raw = bytearray(path.read_bytes())
    size = 12 + 4 * raw[9]
    raw[11] = 0x05
    raw[size:size + 4] = struct.pack("<I", lookup3(bytes(raw[:size])))
    path.write_bytes(raw)


def test_a_scan_goes_on_in_the_copy_its_own_write_repaired_and_swapped_in(
        tmp_path: Path) -> None:
    """Another process's writer killed mid-write leaves the file marked: the scan's next
    write repairs it (a rebuilt copy, swapped in: another inode, another token) and writes
    that copy from then on."""
    path = tmp_path / "s.h5"
    tokens: list[str | None] = []

    def kill_a_writer_after_line_2(event: object) -> None:
        if event.kind == "line_done" and event.line == 2:
            with h5py.File(path, "r") as f:
                tokens.append(identity.token_of(f))
            _mark_open(path)

    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(kill_a_writer_after_line_2)
    assert seq.run() == "finished", seq.message
    with h5py.File(path, "r") as f:
        assert f["k/data/line_done"][()].all()
        assert identity.token_of(f) not in (None, tokens[0])  # the repaired copy's own


@pytest.mark.parametrize("touch", ["read", "write"])
def test_a_scan_goes_on_in_the_copy_another_thread_of_its_process_repaired(
        tmp_path: Path, touch: str) -> None:
    """The window's live view reading the file, or a product written into it, in the scan's
    own process between two lines, repairs a file another process's writer left marked
    (the scan's process counts as no live writer to itself): the scan writes on in that
    copy, as after its own write's repair, not stopping as if its file were replaced."""
    path = tmp_path / "s.h5"

    def touch_it_marked_after_line_2(event: object) -> None:
        if event.kind == "line_done" and event.line == 2:
            _mark_open(path)
            if touch == "read":
                with open_read(path) as f:
                    assert list(f) == ["k"]
            else:
                write_map_entry(path, _map("other"), kind="scan")

    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(touch_it_marked_after_line_2)
    assert seq.run() == "finished", seq.message
    with h5py.File(path, "r") as f:
        assert text(f["k/status"]) == "finished"
        assert f["k/data/line_done"][()].all() and np.isfinite(f["k/data/Bz"][()]).all()


def test_a_copy_put_in_place_of_the_one_a_reader_repaired_is_still_refused(
        tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    there: list[bytes] = []

    def repair_then_swap_a_copy_in_after_line_2(event: object) -> None:
        if event.kind == "line_done" and event.line == 2:
            _mark_open(path)
            with open_read(path):
                pass  # repaired on the way, by this process
            copy = tmp_path / "copy.h5"
            shutil.copyfile(path, copy)  # the same token, another inode
            os.replace(copy, path)
            there.append(path.read_bytes())

    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(repair_then_swap_a_copy_in_after_line_2)
    assert seq.run() == "failed"
    assert "the file was replaced" in seq.message
    assert path.read_bytes() == there[0]


def test_a_file_gets_a_token_when_made_and_a_rebuilt_copy_its_own(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("a"), kind="scan")
    with h5py.File(path, "r") as f:
        made = identity.token_of(f)
    assert made is not None and len(made) == 32
    repair(path)
    with h5py.File(path, "r") as f:
        assert identity.token_of(f) not in (None, made)
        assert list(f) == ["a"]


def _without_token(path: Path) -> None:
    with h5py.File(path, "r+") as f:  # as an earlier release made it
        if identity.TOKEN in f.attrs:
            del f.attrs[identity.TOKEN]


def test_a_scan_started_or_resumed_in_an_earlier_releases_file_gives_it_a_token(
        tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(lambda e: e.kind == "line_done" and e.line == 1 and seq.abort())
    assert seq.run() == "aborted"
    _without_token(path)
    writer = ScanEntryWriter.reopen(path, "k")
    assert writer.file is not None and writer.file.token is not None
    with h5py.File(path, "r") as f:
        assert identity.token_of(f) == writer.file.token
    other = tmp_path / "o.h5"
    write_map_entry(other, _map("a"), kind="scan")
    _without_token(other)
    assert Sequencer(fake_rig(), other, _plan()).run() == "finished"
    with h5py.File(other, "r") as f:
        assert identity.token_of(f) is not None


def test_a_scan_copied_elsewhere_resumes_there_on_a_file_system_that_renumbers_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.h5"
    plan = _plan()
    seq = Sequencer(fake_rig(), path, plan)
    seq.subscribe(lambda e: e.kind == "line_done" and e.line == 1 and seq.abort())
    assert seq.run() == "aborted"
    copy = tmp_path / "elsewhere" / "s.h5"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)  # the same token: it is the copy that is resumed
    _Mount(monkeypatch, os.stat(tmp_path).st_dev, "fuse", "inode", every_look=True)
    assert Sequencer(fake_rig(), copy, plan, resume=True).run() == "finished"
    with h5py.File(copy, "r") as f:
        assert f["k/data/line_done"][()].all() and text(f["k/status"]) == "finished"


@pytest.fixture
def session(tmp_path: Path) -> Path:
    made = tmp_path / "s.h5"
    write_map_entry(made, _map("earlier"), kind="scan")
    return made


def _opened(kind: str, path: Path) -> Callable[[], object]:
    return (lambda: writing(path)) if kind == "writer" else (lambda: open_read(path))


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
@pytest.mark.parametrize("kind", ["writer", "reader"])
def test_readers_and_writers_take_a_file_shown_under_a_new_number_each_look(
        session: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    _Mount(monkeypatch, os.stat(session).st_dev, "fuse", "inode", every_look=True)
    with _opened(kind, session)() as f:
        assert list(f) == ["earlier"]
        assert _locked_by_another(session)


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
@pytest.mark.parametrize("kind", ["writer", "reader"])
def test_a_file_without_a_token_shown_under_a_new_number_each_look_is_refused_clearly(
        session: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    _without_token(session)
    before = session.read_bytes()
    _Mount(monkeypatch, os.stat(session).st_dev, "fuse", "inode", every_look=True)
    error = StorageError if kind == "writer" else InputError
    with pytest.raises(error) as raised, _opened(kind, session)():
        pass
    message = str(raised.value)
    assert "cannot tell whether the file this locked is the one its name stands for" in message
    assert "no identity token" in message and "repair" in message
    assert "copy it to a disk of this machine's own" in message
    with pytest.raises(StorageError, match="cannot tell whether the file"):
        repair(session)  # refused here too: what gives the file a token is done elsewhere
    assert session.read_bytes() == before


class _Rebuilder:
    """Another process holding the file, which swaps a rebuilt copy in (its own token) and
    lets the replaced file go, on the waiter's first pause."""

    def __init__(self, path: Path) -> None:
        self.path, self.swaps = path, 0
        self.fd = os.open(path, os.O_RDWR)
        assert turns.hold_for_writing(self.fd, str(path))

    def swap(self) -> None:
        if self.swaps:
            return
        copy = self.path.with_name("copy.h5")
        shutil.copyfile(self.path, copy)
        with h5py.File(copy, "r+") as f:
            identity.give_token(f)
        os.replace(copy, self.path)
        os.close(self.fd)
        self.swaps += 1


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
@pytest.mark.parametrize("kind", ["writer", "reader"])
def test_a_waiter_takes_the_rebuilt_copys_lock_where_numbers_tell_nothing(
        session: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    _Mount(monkeypatch, os.stat(session).st_dev, "fuse", "inode", every_look=True)
    rebuilder = _Rebuilder(session)
    monkeypatch.setattr(turns, "CLOCK", _SwappingClock(rebuilder.swap))
    with _opened(kind, session)() as f:
        assert rebuilder.swaps == 1
        assert _locked_by_another(session), f"the {kind} holds the replaced file's lock"
        assert list(f) == ["earlier"]


@pytest.mark.parametrize(("kind", "kept"), [
    # on-disk or in-memory numbers that are the file's for its life
    ("ext4", True), ("xfs", True), ("btrfs", True), ("tmpfs", True), ("overlay", True),
    ("ntfs3", True), ("ntfs", True), ("hfsplus", True), ("udf", True), ("nilfs2", True),
    ("", True),  # no mount table to tell (not Linux)
    # numbered as loaded, or by a server, or colliding between host file systems
    ("exfat", False), ("vfat", False), ("msdos", False), ("9p", False), ("virtiofs", False),
    ("fuse", False), ("fuseblk", False), ("fuse.sshfs", False), ("nfs", False),
    ("nfs4", False), ("cifs", False), ("smb3", False), ("a-type-never-heard-of", False)])
def test_inode_numbers_are_trusted_as_each_file_system_type_documents_them(
        monkeypatch: pytest.MonkeyPatch, kind: str, kept: bool) -> None:
    monkeypatch.setattr(identity, "_KEPT", {})
    monkeypatch.setattr(turns, "file_system_type", lambda device: kind)
    assert identity.inode_kept(12345) is kept
