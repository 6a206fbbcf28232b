"""A scan started again from the window just after a making safe cut a stage reply short
(a fly scan aborted during the stage's recording, `DRR?`: its rest, a minute and more at
9600 baud, dropped aside as the window's poll met it) waits for that drop and runs, rather
than failing at once on `StillDropping` (refused so that a Stop queued behind the window's
own call does not wait; a scan's worker has no Stop queued behind it: an abort is seen
while it waits). The drain is held by events, not by time: nothing sleeps."""

from __future__ import annotations

import threading

import h5py
import pytest
from test_stop_amid_drop import HANG_GUARD_S, LinePerRead, cut_stage_reply

from drivers.pi_gcs import STOP_ALL
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import StillDropping
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig

CENTRE = (12.5e-3, 12.5e-3)


def _cut_and_dropping_aside(rig: Rig) -> LinePerRead:
    """The stage's `HPA?` cut at a making safe's deadline, its rest being dropped aside (held
    until the returned line's `release`) as the window's poll of the position met it."""
    line = cut_stage_reply(rig)
    with pytest.raises(StillDropping):
        rig.stage.position()
    assert line.draining.wait(HANG_GUARD_S)
    return line


def released_as_waited(monkeypatch: pytest.MonkeyPatch, line: LinePerRead) -> list[bool]:
    """The held drop of `line` released as soon as a caller waits for it (`StillDropping.wait`):
    a True appended to the list returned for each such wait."""
    wait = StillDropping.wait
    waited: list[bool] = []

    def released(self: StillDropping, seconds: float) -> bool:
        waited.append(True)
        line.release.set()
        return wait(self, seconds)

    monkeypatch.setattr(StillDropping, "wait", released)
    return waited


def _plan() -> ScanPlan:
    return ScanPlan.from_center("step", CENTRE, (40e-6, 40e-6), 20e-6, field=(0, 0, 20e-6))


def test_a_scan_started_while_a_cut_reply_is_dropped_aside_waits_for_the_drop(
        tmp_path, monkeypatch) -> None:
    """The scan's first stage exchange meets the drop under way: it waits for it (the drain
    released as it waits) and the scan runs to its end, the stage's snapshot in its entry.
    Unfixed, the scan failed at once ('StillDropping: ... not sent: the rest of a reply cut
    short is still being dropped'); then, waiting, its entry kept that refusal for the
    stage's snapshot."""
    rig = open_rig(load_profile())
    try:
        line = _cut_and_dropping_aside(rig)
        waited = released_as_waited(monkeypatch, line)
        seq = Sequencer(rig, tmp_path / "s.h5", _plan())
        assert seq.run() == "finished", seq.message
        assert waited
        with h5py.File(tmp_path / "s.h5", "r") as f:  # the stage's snapshot, not a refusal
            assert "error" not in f["step/instrument/snapshot/stage"]
            assert "identity" in f["step/instrument/snapshot/stage"]
        assert not [m for m, amid in line.sent if amid]  # nothing sent amid the drop
    finally:
        line.release.set()
        rig.close()


def test_an_abort_while_the_scan_waits_for_the_drop_ends_it_and_makes_the_rig_safe(
        tmp_path, monkeypatch) -> None:
    """Aborted while its first stage exchange waits for the drop: the scan ends "aborted"
    at once, the rig made safe, the stage's stop sent amid the drop (its checks waiting
    for it). Unfixed, the scan had failed before the abort, on `StillDropping`."""
    rig = open_rig(load_profile())
    try:
        line = _cut_and_dropping_aside(rig)
        seq = Sequencer(rig, tmp_path / "s.h5", _plan())
        wait = StillDropping.wait

        def aborted(self: StillDropping, seconds: float) -> bool:
            seq.abort("test abort")
            return wait(self, 0.0)

        monkeypatch.setattr(StillDropping, "wait", aborted)
        released = threading.Thread(target=lambda: line.stop_sent.wait(HANG_GUARD_S)
                                    and line.release.set(), daemon=True)
        released.start()
        assert seq.run() == "aborted", seq.message
        assert (STOP_ALL, True) in line.sent  # the stop went amid the drop
        assert not seq.safety_problems, seq.safety_problems
    finally:
        line.release.set()
        rig.close()
