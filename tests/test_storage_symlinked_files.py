"""Session files kept behind symbolic links (a 'current' link to today's run, a link into a
network share): a repair or a rebuild through the link rebuilds and replaces the file the
link finally names, its scratch copies beside that file, and the link stays a link to it;
a scan writing through the link goes on in the repaired file. Links beside the file, in
another folder (relative), and a chain of two links."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig
from test_cli_acquisition import SCAN
from test_storage_identity import NY, _mark_open, _plan
from test_storage_nexus import _map
from test_storage_resume_takeover import as_an_earlier_repair_left_it

from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.main import main
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import h5file, identity, turns
from smm_daq.storage.h5file import make_extendable, marked_open, open_read, text, writing
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

REPO = Path(__file__).resolve().parents[1]
SHAPES = ["beside the file", "relative, in another folder", "a chain of two links"]


def _link(tmp_path: Path, shape: str) -> tuple[Path, Path]:
    """(the link, the file it finally names: data/real.h5, not made yet)."""
    data = tmp_path / "data"
    data.mkdir()
    real = data / "real.h5"
    if shape == "beside the file":
        link = data / "current.h5"
        link.symlink_to(real)
    elif shape == "relative, in another folder":
        (tmp_path / "runs").mkdir()
        link = tmp_path / "runs" / "current.h5"
        link.symlink_to(Path("..") / "data" / "real.h5")
    else:
        (tmp_path / "share").mkdir()
        (tmp_path / "share" / "today.h5").symlink_to(real)
        link = tmp_path / "current.h5"
        link.symlink_to(Path("share") / "today.h5")
    return link, real


def _names(tmp_path: Path) -> set[str]:
    """Every name under `tmp_path` (scratch files left anywhere among them)."""
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


def _token(path: Path) -> str | None:
    with h5py.File(path, "r") as f:
        return identity.token_of(f)


@pytest.mark.parametrize("shape", SHAPES)
def test_repair_through_a_link_repairs_the_file_it_names_and_keeps_the_link(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: str) -> None:
    link, real = _link(tmp_path, shape)
    write_map_entry(real, _map("earlier"), kind="scan")
    before, token = read_map(real, "earlier").bz, _token(real)
    _mark_open(real)
    names, pointed = _names(tmp_path), os.readlink(link)
    assert main(["repair", str(link)]) == 0
    assert "cleared the open-for-write mark" in capsys.readouterr().out
    assert link.is_symlink() and os.readlink(link) == pointed
    assert not marked_open(real)
    assert _token(real) not in (None, token)  # the repaired copy is the file now
    np.testing.assert_array_equal(read_map(link, "earlier").bz, before)
    assert _names(tmp_path) == names  # no scratch file left, none moved in beside the link


@pytest.mark.parametrize("shape", SHAPES)
def test_a_scan_through_a_link_goes_on_in_the_file_its_own_write_repaired(
        tmp_path: Path, shape: str) -> None:
    """Another process's writer killed mid-write leaves the file marked: the scan's next
    write repairs it, and the scan writes on in the repaired file behind the link, not in a
    file put in place of the link."""
    link, real = _link(tmp_path, shape)
    write_map_entry(real, _map("earlier"), kind="scan")
    tokens: list[str | None] = []

    def kill_a_writer_after_line_2(event: object) -> None:
        if event.kind == "line_done" and event.line == 2:
            tokens.append(_token(real))
            _mark_open(real)

    names = _names(tmp_path)
    seq = Sequencer(fake_rig(), link, _plan())
    seq.subscribe(kill_a_writer_after_line_2)
    assert seq.run() == "finished", seq.message
    assert link.is_symlink() and not marked_open(real)
    with h5py.File(real, "r") as f:
        assert text(f["k/status"]) == "finished"
        assert f["k/data/line_done"][()].tolist() == [True] * NY
        assert np.isfinite(f["k/data/Bz"][()]).all()
        assert identity.token_of(f) not in (None, tokens[0])
    assert _names(tmp_path) == names


def test_resume_through_a_link_rebuilds_an_earlier_repairs_fixed_run_log_in_its_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run log an earlier release's repair left of a fixed length is rebuilt extendable
    in the file behind the link, swapped in there; the link stays."""
    link, real = _link(tmp_path, "relative, in another folder")
    assert main([*SCAN, "--out", str(real)]) == 0
    with h5py.File(real, "a") as f:  # as an aborted scan leaves it
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][2:] = False
    as_an_earlier_repair_left_it(real)
    names, pointed = _names(tmp_path), os.readlink(link)
    assert main(["resume", str(link), "--entry", "s1"]) == 0, capsys.readouterr()
    assert link.is_symlink() and os.readlink(link) == pointed
    with h5py.File(real, "r") as f:
        assert f["s1/runs/start_time"].maxshape == (None,)
        assert f["s1/runs/run"][()].tolist() == [0, 1]
        assert text(f["s1/status"]) == "finished" and f["s1/data/line_done"][()].all()
    assert _names(tmp_path) == names


KILLED_REPAIR = """
import os, signal, sys
import smm_daq.storage.h5file as h5file
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
h5file.repair(sys.argv[1])
"""


def test_repair_through_a_link_removes_what_a_killed_repair_left_beside_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link, real = _link(tmp_path, "relative, in another folder")
    write_map_entry(real, _map("earlier"), kind="scan")
    names = _names(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILLED_REPAIR, str(real)], cwd=REPO,
                            check=False)
    assert killed.returncode == -9
    (left,) = _names(tmp_path) - names  # its complete copy, beside the file
    assert Path(left).parent == Path("data") and Path(left).name.endswith(".repair-tmp")
    _mark_open(real)
    assert main(["repair", str(link)]) == 0
    # named with its folder, which is not the link's
    assert f"removed {tmp_path / left} (left by process" in capsys.readouterr().out
    assert link.is_symlink() and _names(tmp_path) == names


def test_a_file_behind_a_link_to_no_file_yet_is_made_there(tmp_path: Path) -> None:
    """A 'current' link made before the run: the first write makes the file it points to;
    a first write that fails removes that file again, and the link stays."""
    link, real = _link(tmp_path, "a chain of two links")
    with pytest.raises(RuntimeError), writing(link):
        raise RuntimeError("the write fails")
    assert link.is_symlink() and not real.exists()
    write_map_entry(link, _map("earlier"), kind="scan")
    assert link.is_symlink() and real.is_file()
    assert [e.name for e in list_entries(real)] == ["earlier"]
    with h5py.File(real, "r") as f:
        assert text(f.attrs["file_name"]) == "real.h5"


@pytest.mark.parametrize("shape", SHAPES)
def test_an_empty_hdf5_file_behind_a_link_is_named_as_itself_once_written(
        tmp_path: Path, shape: str) -> None:
    """An empty HDF5 file (made by another program) that a link names, written through the
    link, records the file's own name in the root's `file_name`, as a file made through the
    link does: not the link's."""
    link, real = _link(tmp_path, shape)
    h5py.File(real, "w").close()
    write_map_entry(link, _map("earlier"), kind="scan")
    with h5py.File(real, "r") as f:
        assert text(f.attrs["file_name"]) == "real.h5"


def _folder_refuses_new_files(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` as one this user cannot write (the tests run as root, which may write
    anywhere): a new file made there is refused as the system refuses it."""
    real_open = os.open

    def refusing(path: object, flags: int, *args: object, **kw: object) -> int:
        if flags & os.O_CREAT and Path(os.fsdecode(path)).parent == folder:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refusing)


def test_repair_through_a_link_into_a_folder_it_cannot_write_is_refused_as_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The repaired copy is made beside the file the link names, in another folder: one
    this user cannot write is said, with that folder, as a user's error (exit 2), not a
    traceback, and the file is left as it was."""
    link, real = _link(tmp_path, "relative, in another folder")
    write_map_entry(real, _map("earlier"), kind="scan")
    _mark_open(real)
    names, raw = _names(tmp_path), real.read_bytes()
    _folder_refuses_new_files(monkeypatch, real.parent)
    assert main(["repair", str(link)]) == 2
    err = capsys.readouterr().err
    assert str(link) in err and "Permission denied" in err and str(real.parent) in err
    assert "Traceback" not in err
    assert real.read_bytes() == raw and link.is_symlink() and _names(tmp_path) == names


def test_a_rebuild_through_a_link_into_a_folder_it_cannot_write_leaves_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link, real = _link(tmp_path, "relative, in another folder")
    write_map_entry(real, _map("earlier"), kind="scan")
    names, raw = _names(tmp_path), real.read_bytes()
    _folder_refuses_new_files(monkeypatch, real.parent)
    with pytest.raises(InputError, match="Permission denied") as caught:
        make_extendable(link, [])
    assert str(real.parent) in str(caught.value) and str(link) in str(caught.value)
    assert real.read_bytes() == raw and _names(tmp_path) == names


def test_a_failed_first_write_removes_its_own_file_not_the_one_its_link_names_now(
        tmp_path: Path) -> None:
    """The link re-pointed during the first write, to a file another writer has just made
    (holding no entry yet): the write that fails removes the file it made, not that one."""
    link, real = _link(tmp_path, "beside the file")
    other = real.with_name("other.h5")
    with pytest.raises(RuntimeError), writing(link):
        with writing(other):  # another writer's new file, empty so far
            pass
        link.unlink()
        link.symlink_to(other.name)
        raise RuntimeError("the write fails")
    assert link.is_symlink() and other.is_file() and not real.exists()


def _repointed_once_locked(monkeypatch: pytest.MonkeyPatch, link: Path, to: Path) -> None:
    """`link` re-pointed to `to` (a 'current' link moved on to the next session) just after
    a repair or rebuild through it has taken its file's lock."""
    hold = h5file._hold

    def then_repointed(*args: object, **kw: object) -> bool:
        held = hold(*args, **kw)
        if link.is_symlink() and os.readlink(link) != to.name:
            link.unlink()
            link.symlink_to(to.name)
        return held

    monkeypatch.setattr(h5file, "_hold", then_repointed)


@pytest.mark.parametrize("how", ["repair", "rebuild", "write"])
def test_a_link_repointed_during_a_repair_leaves_the_file_it_points_to_now_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The repair (or rebuild, or a write that repairs the file on the way) replaces the
    file it locked, the one the link named when it began, never the other file, which it
    did not lock (another process may be writing it)."""
    link, real = _link(tmp_path, "beside the file")
    other = real.with_name("other.h5")
    write_map_entry(real, _map("earlier"), kind="scan")
    write_map_entry(other, _map("next"), kind="scan")
    tokens, raw = _token(real), other.read_bytes()
    if how != "rebuild":
        _mark_open(real)
    _repointed_once_locked(monkeypatch, link, other)
    if how == "repair":
        assert main(["repair", str(link)]) == 0
    elif how == "rebuild":
        make_extendable(link, [])
    else:
        with writing(link) as f:
            f.attrs["written"] = "here"
    assert os.readlink(link) == other.name and other.read_bytes() == raw
    assert not marked_open(real) and _token(real) not in (None, tokens)
    if how == "write":
        with h5py.File(real, "r") as f:
            assert text(f.attrs["written"]) == "here"


def test_a_read_through_a_link_repointed_once_it_is_locked_reads_the_file_it_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader takes the readers' lock of the file the link names, then opens that file:
    a link re-pointed in between (to a file a writer of another process may be writing,
    unlocked by this reader) does not have it read the other file."""
    link, real = _link(tmp_path, "beside the file")
    other = real.with_name("other.h5")
    write_map_entry(real, _map("earlier"), kind="scan")
    write_map_entry(other, _map("next"), kind="scan")
    _repointed_once_locked(monkeypatch, link, other)
    assert [e.name for e in list_entries(link)] == ["earlier"]
    assert os.readlink(link) == other.name


def test_a_write_within_its_own_read_through_a_link_is_refused_naming_the_link(
        tmp_path: Path) -> None:
    """The user named the link: the refusal names it, not the file it stands for."""
    link, real = _link(tmp_path, "beside the file")
    write_map_entry(link, _map("a"), kind="induced")
    with open_read(link), pytest.raises(StorageError) as caught, writing(link):
        pytest.fail("written within its own read")
    said = str(caught.value)
    assert said.startswith(f"{link}: cannot be opened for writing") and str(real) not in said


def test_a_read_through_a_link_waiting_for_a_writer_here_names_the_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the system has no locks readers share, and the lock file that stands in cannot
    be had (its folder not writable), a reader waits for this process's writer at work by
    the process's own turns: a write held past the reader's wait (here on a virtual clock)
    is said of the link the reader was given."""

    def no_lock_file(path: Path) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(turns, "CLOCK", VirtualClock())
    monkeypatch.setattr(turns, "available", lambda: False)
    monkeypatch.setattr(h5file, "_machine_lock", no_lock_file)
    link, real = _link(tmp_path, "beside the file")
    write_map_entry(link, _map("a"), kind="induced")
    held, go = threading.Event(), threading.Event()

    def write() -> None:
        with writing(link):
            held.set()
            assert go.wait(60)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        assert held.wait(60)
        with pytest.raises(InputError) as caught:
            list_entries(link)
    finally:
        go.set()
        writer.join(60)
    said = str(caught.value)
    assert said.startswith(f"{link}: another writer has held it") and str(real) not in said
    assert [e.name for e in list_entries(link)] == ["a"]


def test_a_read_through_a_link_that_repairs_on_the_way_names_what_it_removed_from_there(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A read through a link in another folder repairs the file its killed writer left
    marked, removing a killed repair's copy beside that file: said with the link's name
    and the copy's folder, as `smm-daq repair` through the link says it."""
    link, real = _link(tmp_path, "relative, in another folder")
    write_map_entry(real, _map("earlier"), kind="scan")
    names = _names(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILLED_REPAIR, str(real)], cwd=REPO,
                            check=False)
    assert killed.returncode == -9
    (left,) = _names(tmp_path) - names
    _mark_open(real)
    assert [e.name for e in list_entries(link)] == ["earlier"]
    assert f"{link}: removed {tmp_path / left} (left by process" in caplog.text
    assert not marked_open(real) and link.is_symlink() and _names(tmp_path) == names
