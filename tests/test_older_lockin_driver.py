"""A lock-in driver from outside the repository (the `smm_daq.drivers` entry point) written
before `LockIn.reference` took `stop=` still runs scans: the line's check calls its
`reference()` without it (decided once per driver class), where it would fail every scan on
an unexpected keyword. Everything runs on the simulated rig's virtual clock."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import h5py

from drivers.sr830 import SR830
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import DRIVER_GROUP, open_rig
from smm_daq.plugins import registered

CENTRE = (12.5e-3, 12.5e-3)


class OlderLockIn(SR830):
    """An SR830 driver as a plug-in written against the earlier interface has it: its
    `reference` takes no `stop`."""

    def reference(self) -> tuple[float, float]:  # type: ignore[override]
        return super().reference()


def test_a_plugin_lockin_whose_reference_takes_no_stop_runs_a_scan(tmp_path,
                                                                    monkeypatch) -> None:
    """A step scan with the plug-in driver checks the lock-in's reference at each line's end
    and finishes. Unfixed, the check called `reference(stop=...)`: the scan failed with
    'unexpected TypeError'."""
    drivers = dict(registered(DRIVER_GROUP))  # the plug-in's, under the name it emulates
    drivers["sr830"] = EntryPoint(name="sr830", group=DRIVER_GROUP,
                                  value="test_older_lockin_driver:OlderLockIn")
    monkeypatch.setattr(rig_module, "registered",
                        lambda group: drivers if group == DRIVER_GROUP else registered(group))
    rig = open_rig(load_profile())
    try:
        assert type(rig.lockin).__name__ == "OlderLockIn"
        plan = ScanPlan.from_center("step", CENTRE, (40e-6, 40e-6), 20e-6,
                                    field=(0, 0, 20e-6))
        seq = Sequencer(rig, tmp_path / "s.h5", plan)
        assert seq.run() == "finished", seq.message
        with h5py.File(tmp_path / "s.h5", "r") as f:
            assert f["step/data/line_done"][()].all()
    finally:
        rig.close()


class OlderBufferedLockIn(SR830):
    """An SR830 driver as a plug-in written before `read_buffer` and `configure_buffer` took
    `stop` has them."""

    def configure_buffer(self, rate):  # type: ignore[no-untyped-def,override]
        return super().configure_buffer(rate)

    def read_buffer(self):  # type: ignore[no-untyped-def,override]
        return super().read_buffer()


def test_a_plugin_lockin_whose_read_buffer_takes_no_stop_runs_a_fly_scan(tmp_path,
                                                                         monkeypatch) -> None:
    """A fly scan with the plug-in driver configures its buffer, reads each line's and
    finishes. Unfixed, the line's read called `read_buffer(stop=...)` (and the start
    `configure_buffer(rate, stop=...)`): the scan failed with 'unexpected TypeError'."""
    drivers = dict(registered(DRIVER_GROUP))
    drivers["sr830"] = EntryPoint(name="sr830", group=DRIVER_GROUP,
                                  value="test_older_lockin_driver:OlderBufferedLockIn")
    monkeypatch.setattr(rig_module, "registered",
                        lambda group: drivers if group == DRIVER_GROUP else registered(group))
    rig = open_rig(load_profile())
    try:
        assert type(rig.lockin).__name__ == "OlderBufferedLockIn"
        plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6,
                                    field=(0, 0, 20e-6), fly=FlySettings(pixel_time=0.05))
        seq = Sequencer(rig, tmp_path / "s.h5", plan)
        assert seq.run() == "finished", seq.message
        with h5py.File(tmp_path / "s.h5", "r") as f:
            assert f["fly/data/line_done"][()].all()
    finally:
        rig.close()
