"""A scan paused for a lock-in overload goes on once the operator has raised the lock-in's
range (at its front panel) and resumed: the full scale is read again at the resume, so the
range check and the full scale stored with each reading are the instrument's, not the one
read at the start, which paused the scan again at the next point however often it was
resumed. Drivers over the emulated SR830, on the simulated rig."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.sample import VirtualSample
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.storage.h5file import open_read

C = 12.5e-3


@pytest.fixture
def rig():
    grain = np.array([[C, C, -30e-6, 40e-6, 30e-6, 40e-6]])  # tens of µT at 100 µm: ~0.1 V
    sample = VirtualSample(grain, np.array([0]), remanence=np.array([[3e4, 1e4, 4e4]]),
                           susceptibility=np.array([0.0]))
    r = open_rig(load_profile(), world_options={"sample": sample, "seed": 3})
    yield r
    r.close()


def test_a_scan_resumed_after_the_range_was_raised_goes_on(rig, tmp_path) -> None:
    rig.lockin.set_sensitivity(0.02)  # the grain overloads it
    seq = Sequencer(rig, tmp_path / "s.h5", ScanPlan.from_center(
        "k", (C, C), (150e-6, 150e-6), 15e-6, field=(0.0, 0.0, 0.0)))
    pauses = []

    def operator(event) -> None:  # at the front panel: a range 20 times larger, then resume
        if event.kind != "paused":
            return
        pauses.append(event.message)
        if len(pauses) > 3:  # paused again and again: give up
            seq.abort()
            return
        rig.lockin.set_sensitivity(0.5)
        seq.resume()

    seq.subscribe(operator)
    assert seq.run() == "finished", pauses
    assert len(pauses) == 1, pauses
    full_scale = rig.lockin.sensitivity()
    assert full_scale >= 0.5
    with open_read(tmp_path / "s.h5") as f:  # the range each reading was taken in
        stored = f["k/data/lockin_range"][()]
    assert np.nanmax(stored) == pytest.approx(full_scale)


def test_a_time_constant_changed_while_paused_keeps_the_scan_paused(rig, tmp_path) -> None:
    """Every line is settled by, and the entry records, the τ the scan started with: one
    changed at the front panel while paused keeps the scan paused, saying so, until it is set
    back (not settled by the old τ while the lock-in filters with the new one)."""
    tau = rig.lockin.time_constant()
    seq = Sequencer(rig, tmp_path / "s.h5", ScanPlan.from_center(
        "k", (C, C), (60e-6, 60e-6), 15e-6, field=(0.0, 0.0, 0.0)))
    pauses = []

    def operator(event) -> None:
        if event.kind == "point" and not pauses:
            seq.pause()
        if event.kind != "paused":
            return
        pauses.append(event.message)
        if len(pauses) == 1:
            rig.lockin.set_time_constant(tau * 10)  # at the front panel, then resume
        elif len(pauses) == 2:
            rig.lockin.set_time_constant(tau)  # set back as told
        else:
            seq.abort()
            return
        seq.resume()

    seq.subscribe(operator)
    assert seq.run() == "finished", pauses
    assert len(pauses) == 2, pauses
    assert "time constant was changed" in pauses[1]
    assert f"set it back to {tau:g} s" in pauses[1]
    with open_read(tmp_path / "s.h5") as f:
        assert f["k/status"][()].decode() == "finished"


def test_a_reference_changed_while_paused_keeps_the_scan_paused(rig, tmp_path) -> None:
    """The sensor's excitation (the reference amplitude) lowered at the front panel while
    paused, against an overload say: the scan stays paused, saying so, until it is set back;
    it failed once the next whole line was measured."""
    frequency, amplitude = rig.lockin.reference()
    seq = Sequencer(rig, tmp_path / "s.h5", ScanPlan.from_center(
        "k", (C, C), (60e-6, 60e-6), 15e-6, field=(0.0, 0.0, 0.0)))
    pauses = []

    def operator(event) -> None:
        if event.kind == "point" and not pauses:
            seq.pause()
        if event.kind != "paused":
            return
        pauses.append(event.message)
        if len(pauses) == 1:
            rig.lockin.set_reference(frequency, amplitude / 2)  # at the front panel
        elif len(pauses) == 2:
            rig.lockin.set_reference(frequency, amplitude)  # set back as told
        else:
            seq.abort()
            return
        seq.resume()

    seq.subscribe(operator)
    assert seq.run() == "finished", (pauses, seq.message)
    assert len(pauses) == 2, pauses
    assert "the lock-in's reference was changed while paused: reference amplitude" in pauses[1]
    assert "set it back" in pauses[1]
