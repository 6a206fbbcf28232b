"""Every command an acquisition or storage message advises is quoted for the shell: a scan
named with a space, in a folder with one, pasted back names that scan of that file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import StorageError
from smm_daq.storage import scan_entry
from smm_daq.storage.scan_entry import check_new_scan

NAME = "my scan"


def _commands(message: str) -> list[list[str]]:
    """The commands between backticks in `message`, split as a shell splits them."""
    return [shlex.split(c) for c in re.findall(r"`(smm-daq [^`]*)`", message)]


def _assert_whole(message: str, path: Path, expected: int) -> None:
    commands = _commands(message)
    assert len(commands) == expected, message
    for words in commands:
        assert str(path) in words or "NEW-PATH" in words, words
        if "--entry" in words:
            assert words[words.index("--entry") + 1] == NAME, words


@pytest.fixture
def path(tmp_path: Path) -> Path:
    folder = tmp_path / "my session"
    folder.mkdir()
    return folder / "s.h5"


def _plan() -> ScanPlan:
    return ScanPlan.from_center(NAME, (12.5e-3, 12.5e-3), (40e-6, 30e-6), 10e-6,
                                field=(0.0, 40e-6, 0.0))


@pytest.mark.parametrize("started", [False, True])
def test_a_stalled_writes_advice_is_quoted(path, started) -> None:
    seq = Sequencer(fake_rig(), path, _plan(), recipe_text="a recipe")
    if started:
        seq._writer = object()  # type: ignore[assignment]  # past the entry's creation
        seq.stalled_write = "line 2"
    _assert_whole(str(seq.stall_error()), path, 3 if started else 4)


def test_a_taken_scan_names_its_resume_quoted(path) -> None:
    assert Sequencer(fake_rig(), path, _plan()).run() == "finished"
    with h5py.File(path, "a") as f:  # a scan `resume` may finish (not a finished one)
        f[NAME]["status"][()] = "aborted"
    with pytest.raises(scan_entry.EntryTaken) as refused:
        check_new_scan(path, NAME)
    _assert_whole(str(refused.value), path, 1)


def test_a_scan_in_progress_names_its_resume_quoted(path) -> None:
    _assert_whole(scan_entry._in_progress(path, NAME, "running"), path, 1)


def test_a_file_gone_mid_scan_names_its_resume_quoted(path) -> None:
    writer = scan_entry.ScanEntryWriter(path, NAME, np.zeros(3, bool))
    with pytest.raises(StorageError) as gone, writer._writing():
        pass
    _assert_whole(str(gone.value), path, 1)


@pytest.mark.parametrize("state", [
    dict(kept=False, earlier=True, acquired="scan"),
    dict(kept=False, earlier=False, acquired="", fixed="an image"),
    dict(kept=True, earlier=False, acquired=""),
    dict(kept=False, earlier=False, acquired=""),
])
def test_infos_note_of_a_write_cut_off_names_repair_quoted(path, state) -> None:
    from smm_daq.cli.acquisition import _cut_off_note
    from smm_daq.storage.staging import CutOff

    note = _cut_off_note(CutOff(name=NAME, key="staged", **state), str(path))
    commands = _commands(note)
    assert commands and all(str(path) in words for words in commands), note


def test_a_stalled_subtractions_advice_is_quoted(path, monkeypatch) -> None:
    """The disk stalls while a subtraction is written (the wait told as stalled at once)."""
    from smm_daq.acquisition import session as session_module
    from smm_daq.errors import WriteStalled

    def stalls(work, what, *, make_safe, stalled):
        raise stalled()

    monkeypatch.setattr(session_module, "wait_aside", stalls)
    with pytest.raises(WriteStalled) as ended:
        session_module.Session(path, fake_rig()).subtract("a", "b", NAME)
    _assert_whole(str(ended.value), path, 3)
