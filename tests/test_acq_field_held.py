"""A supply that trips mid-scan fails the scan: the map never mixes fields under "finished"."""

from __future__ import annotations

import h5py
import numpy as np

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InstrumentTimeout
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

UM = 1e-6


def test_a_supply_tripping_mid_scan_fails_the_scan_and_leaves_the_rig_safe(tmp_path) -> None:
    profile = load_profile()
    rig = open_rig(profile)
    plan = ScanPlan.from_center("trip", (12.5e-3, 12.5e-3), (100 * UM, 100 * UM), 20 * UM,
                                field=(0.0, 40e-6, 0.0))
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    points = []

    def trip_on_the_eighth_point(event) -> None:
        if event.kind == "point":
            points.append(event)
            if len(points) == 8:  # in the second line of six points
                rig.world.coils.trip(1)

    seq.subscribe(trip_on_the_eighth_point)
    status = seq.run()
    assert status == "failed"
    assert "no longer hold the field" in seq.message
    assert ("coil y reads 0.0000 A for 0.8000 A set (0.8000 A below, about 0 A: its supply "
            "may have tripped") in seq.message
    assert "coil x" not in seq.message and "coil z" not in seq.message
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["trip/status"].asstr()[()] == "failed"
        done = f["trip/data/line_done"][()].astype(bool)
    assert done.tolist() == [True, False, False, False, False, False]
    np.testing.assert_allclose(rig.world.coils.currents(), 0.0, atol=1e-9)
    rig.close()


def test_a_current_far_above_its_setpoint_is_named_and_not_called_a_trip(tmp_path) -> None:
    profile = load_profile()
    rig = open_rig(profile)
    plan = ScanPlan.from_center("above", (12.5e-3, 12.5e-3), (100 * UM, 100 * UM), 20 * UM,
                                field=(0.0, 40e-6, 0.0))
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    points = []

    def set_at_the_front_panel(event) -> None:
        if event.kind == "point":
            points.append(event)
            if len(points) == 8:
                rig.world.coils.set_current(1, 2.0)  # 0.8 A set by the scan

    seq.subscribe(set_at_the_front_panel)
    assert seq.run() == "failed"
    assert ("coil y reads 2.0000 A for 0.8000 A set (1.2000 A above its setpoint: not a trip"
            in seq.message), seq.message
    assert "tripped" not in seq.message
    np.testing.assert_allclose(rig.world.coils.currents(), 0.0, atol=1e-9)
    rig.close()


def test_a_trip_whose_currents_do_not_read_again_is_still_said(tmp_path, monkeypatch) -> None:
    """The currents read once more to name the coils off time out (a supply that tripped may
    not answer): the scan still fails saying the coils no longer hold the field, not as an
    instrument's timeout alone."""
    rig = open_rig(load_profile())
    plan = ScanPlan.from_center("trip", (12.5e-3, 12.5e-3), (100 * UM, 100 * UM), 20 * UM,
                                field=(0.0, 40e-6, 0.0))
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    points = []
    reads = rig.coils.currents

    def answers_once() -> object:
        monkeypatch.setattr(rig.coils, "currents", no_answer)
        return reads()

    def no_answer() -> object:
        raise InstrumentTimeout("no reply to MEAS:CURR? within 2 s", instrument="coil y")

    def trip_on_the_eighth_point(event) -> None:
        if event.kind == "point":
            points.append(event)
            if len(points) == 8:
                rig.world.coils.trip(1)
                monkeypatch.setattr(rig.coils, "currents", answers_once)  # the check's read

    seq.subscribe(trip_on_the_eighth_point)
    try:
        assert seq.run() == "failed"
    finally:
        monkeypatch.setattr(rig.coils, "currents", reads)
        rig.close()
    assert seq.message.startswith("SafetyError: the coils no longer hold the field during "
                                  "line 2: the currents did not read again"), seq.message
    assert "no reply to MEAS:CURR?" in seq.message
