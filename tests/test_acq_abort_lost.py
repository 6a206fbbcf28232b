"""An instrument lost on the call under way as a scan is aborted: the scan ends "aborted" (the
failed call noted), and the lost instrument is kept on `Sequencer.lost` all the same, which
the window reads to say how to reconnect it."""

from __future__ import annotations

import numpy as np
from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InstrumentLost

UM = 1e-6
C = 12.5e-3


def _plan(**kw) -> ScanPlan:
    return ScanPlan.from_center("scan", (C, C), (40 * UM, 30 * UM), 10 * UM, **kw)


def test_a_lockin_lost_on_the_read_under_way_at_an_abort_is_kept_as_lost(tmp_path):
    """The abort comes during the fourth point's lock-in reading, which then fails with its
    connection gone. Unfixed, the scan ended "aborted" with `lost` None: the window gave no
    hint to reconnect the lock-in."""
    rig = fake_rig()
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    gone = InstrumentLost("connection closed", instrument="lockin")

    def aborted_then_lost() -> None:
        seq.abort()
        raise gone

    rig.lockin.hooks[4] = aborted_then_lost
    assert seq.run() == "aborted"
    assert seq.lost is gone
    said = "the instrument call under way as the scan was aborted failed: lockin: connection closed"
    assert any(said in n for n in seq.notes), seq.notes
    assert rig.safe_calls == 1 and rig.stage.stops == 1
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_a_coil_supply_lost_on_the_ramp_step_under_way_at_an_abort_is_kept_as_lost(
    tmp_path, monkeypatch
):
    """The abort comes during the field's ramp, whose step then fails with the supply's
    connection gone: the scan ends "aborted", the field made safe from there, and the supply
    kept as lost. Unfixed, `lost` stayed None."""
    rig = fake_rig()
    seq = Sequencer(rig, tmp_path / "s.h5", _plan(field=(0.0, 40e-6, 0.0)))
    gone = InstrumentLost("no reply after 3 attempts", instrument="coils")
    set_field = rig.coils.set_field

    def lost_on_the_ramp(b, *, ramp=True, stop=None) -> None:
        if np.any(np.asarray(b) != 0.0) and seq.lost is None and not seq.notes:
            seq.abort()
            raise gone
        set_field(b, ramp=ramp, stop=stop)

    monkeypatch.setattr(rig.coils, "set_field", lost_on_the_ramp)
    assert seq.run() == "aborted"
    assert seq.lost is gone
    assert any(
        "coils: no reply after 3 attempts; the field was made safe from there" in n
        for n in seq.notes
    ), seq.notes
    assert rig.safe_calls == 1
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
