"""A result entry's maps are labelled as what they are for viewers that show `long_name`
(silx, NeXpy): its `data/Bz` is the residual, not the measured map a scan entry holds at the
same path, which readers still find there."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.cli.main import main

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"


def test_residual_and_fitted_maps_are_named_as_such(tmp_path):
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--sigma-nT", "1", "--out", str(tmp_path / "r.csv"),
                 "--result-entry", "r"]) == 0
    with h5py.File(h5, "r") as f:
        assert f["qdm/data/Bz"].attrs["long_name"] == "Bz (T)"  # the measured map's
        names = {path: f[path].attrs["long_name"]
                 for path in ("r/data/Bz", "r/scans/qdm/residual_Bz", "r/fitted/Bz",
                              "r/scans/qdm/fitted_Bz")}
        residual = f["r/data/Bz"][()]
    assert names["r/data/Bz"] == names["r/scans/qdm/residual_Bz"] == \
        "residual Bz, measured minus fitted (T)", names
    assert names["r/fitted/Bz"] == names["r/scans/qdm/fitted_Bz"] == \
        "Bz of the fitted grains (T)", names
    np.testing.assert_array_equal(read_result_entry(h5, "r").residual.bz, residual)
