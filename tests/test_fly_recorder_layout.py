"""A flown scan's file lays out each line's recorded positions (`fly_streams/position_x`,
`position_time`) for what the stage driver reads back of a line, not for its whole data
recorder: an E-727 has 262144 points, 4 MB of NaN padding a line in two datasets."""

from __future__ import annotations

import h5py
import numpy as np

from drivers.pi_gcs import RECORDED_PER_LINE
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig


def test_an_e727_flown_line_record_is_laid_out_for_the_points_read_back(tmp_path):
    path = tmp_path / "f.h5"
    plan = ScanPlan.from_center("fly", (900e-6, 900e-6), (60e-6, 4e-6), 2e-6,
                                fly=FlySettings(pixel_time=0.05))
    with open_rig(load_profile("configs/simulator-e727.toml")) as rig:
        assert Sequencer(rig, path, plan).run() == "finished"
    with h5py.File(path, "r") as f:
        x = f["fly/fly_streams/position_x"][()]
        t = f["fly/fly_streams/position_time"][()]
    most = RECORDED_PER_LINE + RECORDED_PER_LINE // 8  # a line's points and the settling's
    assert x.shape == t.shape == (plan.ny, most)
    for row, times in zip(x, t, strict=True):
        n = int(np.isfinite(row).sum())
        assert 1000 < n < most  # the line's record whole, then NaN padding
        assert np.all(np.isfinite(row[:n])) and np.all(np.diff(times[:n]) > 0)
