"""A scan runs through our PI driver on each simulated stage: the E-727 in µm (flexure travel)
and the C-884 in mm (referenced at connect); the file records which units the stage used."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.nexus import read_map

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("profile", "centre", "unit", "model"),
    [
        # the same spot of the sample (its strongest grain): the E-727's stage holds the
        # sample 11600 µm further along x and y (simulation.sample_offset_um)
        ("simulator-e727.toml", "760,60", "\u00b5m", "E-727"),
        ("simulator.toml", "12360,11660", "mm", "C-884"),
    ],
)
def test_a_scan_on_each_stage(tmp_path: Path, profile, centre, unit, model) -> None:
    out = tmp_path / "scan.h5"
    code = main(["scan", "--profile", str(REPO / "configs" / profile), "--center-um", centre,
                 "--size-um", "100,100", "--step-um", "50", "--name", "s", "--out", str(out)])
    assert code == 0  # fmt: skip
    m = read_map(out, "s")
    assert m.shape == (3, 3) and np.all(np.isfinite(m.bz))
    assert abs(m.bz[1, 1]) > 10e-6  # above the grain on both stages
    with h5py.File(out, "r") as f:
        snapshot = json.loads(f["s/instrument/snapshot/json"][()])
    assert snapshot["stage"]["units"] == [unit] * 3
    assert model in snapshot["stage"]["identity"]
    assert snapshot["fluxgate"]["channels"] == [101, 102, 103]
