"""`smm-daq export --dataset` offers and takes only maps of the entry's grid: on a grid 3
points wide the fluxgate's per-line readings (ny, 3), and on one 3 × 3 the coils'
calibration matrix, have the grid's shape but are no maps; each is refused, named for what
it is, and left out of the maps listed."""

from __future__ import annotations

from pathlib import Path

import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.main import main

HELD = ("expected a map the entry holds: Bz (the default), data/lockin_range, data/lockin_x, "
        "data/lockin_y, data/time")


@pytest.fixture
def scanned(tmp_path: Path) -> Path:
    """A 3 × 3-point scan."""
    path = tmp_path / "s.h5"
    plan = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (20e-6, 20e-6), 10e-6)
    assert Sequencer(fake_rig(), path, plan).run() == "finished"
    return path


@pytest.mark.parametrize(("dataset", "what"), [
    ("data/line_field", "the fluxgate's field (x, y, z) at each grid line's end"),
    ("instrument/calibration/coil_matrix", "an instrument's setting or calibration"),
])
def test_a_dataset_of_the_grids_shape_that_is_no_map_is_refused(scanned, tmp_path, capsys,
                                                                dataset, what) -> None:
    out = tmp_path / "x.csv"
    assert main(["export", str(scanned), "--entry", "s", "--dataset", dataset,
                 "--csv", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"'{dataset}' is {what}" in err and "not a map of the entry's grid" in err, err
    assert HELD in err and not out.exists()


def test_the_maps_listed_are_the_grids_only(scanned, tmp_path, capsys) -> None:
    assert main(["export", str(scanned), "--entry", "s", "--dataset", "nowhere",
                 "--csv", str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err.rstrip().endswith(HELD)
    assert main(["export", str(scanned), "--entry", "s", "--dataset", "data/lockin_x",
                 "--csv", str(tmp_path / "x.csv")]) == 0
