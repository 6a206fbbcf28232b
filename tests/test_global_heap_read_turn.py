"""A reader whose file was replaced between its first heap check and HDF5's open (another
process renamed a copy over it) reads it whole again (seconds a gigabyte, and HDF5's
walk in a child where damage is met) only once it holds up no writer of its own process: the
scan's writer in the window's process, arriving meanwhile, takes its turn and writes, not
held at its start for as long as that check takes; and the damage found is said as it is,
not as found while another writer held the file. Waits run on a virtual clock: nothing
sleeps."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import pytest
from test_storage_nexus import _map

from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError
from smm_daq.storage import global_heap, turns
from smm_daq.storage.h5file import open_read, writing
from smm_daq.storage.nexus import write_map_entry

pytestmark = pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
JOIN_S = 60  # a thread that has not ended by then waits for ever: the test fails, never hangs
FIRST_WAIT_S = 10  # real seconds the reader's first pause waits for the writer to be done


class _AfterTheWrite(VirtualClock):
    """A virtual clock whose first pause in the reader's thread lasts (in real time) until
    the writer's write is done, `FIRST_WAIT_S` at most: a reader waiting for the writer's
    turn sees it let go once the write is made, as it would on the system's clock."""

    def __init__(self, reader: int, done: threading.Event) -> None:
        super().__init__()
        self.reader, self.done, self.waited = reader, done, False

    def sleep(self, seconds: float) -> None:
        if threading.get_ident() == self.reader and not self.waited:
            self.waited = True
            self.done.wait(FIRST_WAIT_S)
        super().sleep(seconds)


def test_damage_met_at_the_open_is_judged_again_without_holding_up_this_process_writer(
        tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="scan")
    reader = threading.get_ident()
    has_turn, done = threading.Event(), threading.Event()
    clock = _AfterTheWrite(reader, done)
    monkeypatch.setattr(turns, "CLOCK", clock)
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)
    out: list[BaseException | None] = []

    def write() -> None:
        try:
            with writing(path, create=False) as f:
                f.attrs["note"] = "written by the scan"
            out.append(None)
        except BaseException as exc:  # handed to the test
            out.append(exc)
        finally:
            done.set()

    real_hold = turns.hold_for_writing

    def hold_for_writing(fd, source, deadline=None, ready=None):  # type: ignore[no-untyped-def]
        def then_said() -> None:
            if ready is not None:
                ready()
            has_turn.set()

        return real_hold(fd, source, deadline, then_said)

    monkeypatch.setattr(turns, "hold_for_writing", hold_for_writing)
    real_found = global_heap.damaged_collection
    checks: list[str] = []

    def found(p, *args):  # type: ignore[no-untyped-def]
        if threading.get_ident() != reader or not checks:
            return real_found(p, *args)
        if checks == ["first"]:  # as HDF5 is about to open it: the scan's writer comes
            checks.append("at the open")
            threading.Thread(target=write, daemon=True).start()
            assert has_turn.wait(FIRST_WAIT_S), "the scan's writer was held up by the check"
        return 100, "half"

    def first_check(p, *args):  # type: ignore[no-untyped-def]
        checks.append("first")
        # from now on no state is remembered: each check reads the file (the scan's writer
        # remembers the state it leaves)
        monkeypatch.setattr(global_heap, "_remember", lambda stamp, found: None)
        monkeypatch.setattr(global_heap, "damaged_collection", found)
        judged = real_found(p, *args)
        copy = path.with_name("copy.h5")  # put over it between the read's check and its open
        copy.write_bytes(path.read_bytes())
        os.replace(copy, path)
        return judged

    monkeypatch.setattr(global_heap, "_judged", OrderedDict())
    monkeypatch.setattr(global_heap, "damaged_collection", first_check)
    with pytest.raises(InputError) as raised, open_read(path):
        pytest.fail("opened")
    assert "at the open" in checks
    assert done.wait(JOIN_S)
    assert out == [None]
    said = str(raised.value)
    assert "is damaged: the HDF5 global heap collection at byte 100 " in said
    assert "held the file for more than" not in said, said
    assert clock.now() < turns.TURN_WAIT_S
