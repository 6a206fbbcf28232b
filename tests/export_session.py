"""A session file holding an entry of every kind `smm-daq export` reads: scans, an induced
map, a susceptibility and a magnetization model, a joint MMT result of scans of two shapes
and an optical image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.analysis.optical import fit_affine
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.optical_entry import write_optical_entry

UM = 1e-6
STEP = 4 * UM
GRAINS = point_grains(np.array([[10, 10, -3], [30, 12, -4], [20, 30, -5]]) * UM,
                      np.array([4.0, 6.0, 8.0]) * UM**3)
MOMENTS = np.array([[3e4, 0, -2e4], [-1e4, 2e4, 1e4], [1e4, 1e4, 2e4]])
# name -> (columns, height µm, applied field T): 'low' and 'high' of one shape, 'side' narrower
SCANS = {"low": (11, 2.0, 0.0), "high": (11, 4.0, 0.0), "side": (8, 3.0, 0.0),
         "in_field": (11, 2.0, 40e-6)}
JOINT = ("low", "high", "side")  # the scans of the joint MMT result 'joint', in order


def write_export_session(tmp: Path) -> Path:
    """The session file (tmp/s.h5), its entries named after their kinds: the scans of `SCANS`,
    'induced' (in_field − low), 'chi', 'mag', 'joint' (a dipole MMT result of `JOINT`) and
    'optical'."""
    path = tmp / "s.h5"
    rng = np.random.default_rng(5)
    y = np.arange(11) * STEP
    for name, (columns, height, field) in SCANS.items():
        x = np.arange(columns) * STEP
        X, Y = np.meshgrid(x, y)
        sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height * UM)]
        bz = forward(MultipoleModel.build(GRAINS, Sensor(), "dipole"), sensors, MOMENTS)
        bz = bz.reshape(X.shape) * (1 + field * 1e4) + rng.normal(0, 2e-9, X.shape)
        write_map_entry(path, MapData(bz=bz, x=x, y=y, height=height * UM,
                                      sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, field, 0.0]), name=name),
                        kind="scan")
    grains = tmp / "grains.txt"
    write_points(grains, GRAINS)
    s = str(path)
    for argv in (["subtract", s, "--in-field", "in_field", "--remanent", "low",
                  "--no-register", "--name", "induced"],
                 ["susceptibility", s, "--entry", "induced", "--name", "chi", "--thickness-um",
                  "5", "--noise-nT", "2"],
                 ["magnetization", s, "--entry", "low", "--name", "mag", "--thickness-um", "5",
                  "--direction", "0,0,1", "--noise-nT", "2"],
                 ["mmt", "invert", s, "--grains", str(grains), "--grain-format", "points",
                  "--model", "dipole", *(a for scan in JOINT for a in ("--entry", scan)),
                  "--out", str(tmp / "joint.csv"), "--result-entry", "joint"]):
        assert main(argv) == 0, argv
    image = np.full((4, 5, 3), 200, dtype=np.uint8)
    write_optical_entry(path, "optical", image, fit_affine(
        np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]),
        np.array([[0.0, 0.0], [40 * UM, 0.0], [0.0, 30 * UM]])))
    return path
