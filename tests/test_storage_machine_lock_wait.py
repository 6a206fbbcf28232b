"""Where the system has no open-file-description locks (Windows, macOS), the lock file in the
machine's lock directory that stands in is waited for `turns.TURN_WAIT_S` at most, as the
locks it stands in for are: a reader checking again, in its turn, damage met while a writer
may have been at work, or a writer, never waits for ever behind a process that holds it (a
writer stopped on a stalled disk). The reader says the damage it found, and that it was
found while a writer held the file; the writer is refused, nothing written. Played here with
Linux's locks turned off; waits run on a virtual clock."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from ended_in_thread import ended
from opens_elsewhere import opened_elsewhere
from turn_files import session_file, waits_on

from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, StorageError
from smm_daq.locks import LOCK_DIR_ENV
from smm_daq.storage import global_heap, h5file, turns
from smm_daq.storage.h5file import check_heaps, writing

WAITED_WITHOUT_END = "waited for the machine's lock without end"


@pytest.fixture
def held_by_another(tmp_path, monkeypatch):
    """A session file whose machine lock another process holds (a writer stopped at it)."""
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    waits_on(monkeypatch, VirtualClock())
    monkeypatch.setattr(turns, "available", lambda: False)
    path = session_file(tmp_path)
    other = h5file._machine_lock(path)  # a lock file of its own: another holder
    other.acquire()
    yield path
    other.release()


def test_a_readers_check_again_in_its_turn_is_bounded_and_says_why(held_by_another,
                                                                   monkeypatch):
    path = held_by_another
    monkeypatch.setattr(global_heap, "_judged", OrderedDict())  # as another process sees it
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)
    # a collection read half rewritten, twice in a row
    monkeypatch.setattr(global_heap, "damaged_collection", lambda p, *a: (100, "half"))
    raised = ended(lambda: check_heaps(path), never_ended=WAITED_WITHOUT_END)
    assert isinstance(raised, InputError)
    said = str(raised)
    assert said.startswith(f"{path}: is damaged: the HDF5 global heap collection at byte 100 ")
    assert (f"found while another writer held the file for more than {turns.TURN_WAIT_S:g} s"
            in said)
    assert turns.CLOCK.now() >= turns.TURN_WAIT_S


def test_a_writer_is_refused_once_the_machine_lock_is_held_past_the_wait(held_by_another):
    path = held_by_another
    before = path.read_bytes()

    def write() -> None:
        with writing(path, create=False) as f:
            f.attrs["note"] = "never written"

    raised = ended(write, never_ended=WAITED_WITHOUT_END)
    assert isinstance(raised, StorageError)
    assert "another writer has held it for more than" in str(raised)
    assert "nothing was written" in str(raised)
    assert path.read_bytes() == before
    assert opened_elsewhere(path) == "['earlier']"
