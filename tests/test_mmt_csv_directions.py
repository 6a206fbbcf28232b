"""The result CSV says its declination's convention in its header, and stays loadable as is."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from smm_daq.cli.main import main


@pytest.fixture(scope="module")
def result_csv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csv")
    h5, grains, truth, out = (tmp / n for n in ("s.h5", "g.csv", "t.csv", "r.csv"))
    assert main(["mmt", "synth", "--out", str(h5), "--name", "scan", "--grains-out",
                 str(grains), "--truth-out", str(truth), "--size-um", "30,30",
                 "--thickness-um", "15", "--density-per-mm3", "4e5", "--height-um", "2",
                 "--step-um", "1", "--noise-nT", "10", "--seed", "3"]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
                 "--sigma-nT", "10", "--out", str(out)]) == 0
    return out


def test_the_declination_column_names_its_convention_and_holds_it(result_csv):
    """CSVs written before the declination was clockwise from north headed the angle
    counter-clockwise from +x `declination_deg`: today's must not be headed so, or a reader
    could not tell the two apart. The column holds the angle from +y (north) towards +x
    (east) of each row's own mx, my, by hand."""
    with open(result_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert "declination_deg" not in rows[0]
    # every SD column pairs with its value's by name, the declination's too
    assert all(name[3:] in rows[0] for name in rows[0] if name.startswith("sd_"))
    for r in rows:
        mx, my, mz = (float(r[f"m{c}_A_per_m"]) for c in "xyz")
        east_of_north = np.degrees(np.arctan2(mx, my)) % 360.0
        assert float(r["declination_cw_from_north_deg"]) == pytest.approx(east_of_north,
                                                                          abs=1e-5)
        down = np.degrees(np.arctan2(-mz, np.hypot(mx, my)))
        assert float(r["inclination_deg"]) == pytest.approx(down, abs=1e-5)


def test_the_csv_loads_in_numpy_and_pandas_without_options(result_csv):
    table = np.genfromtxt(result_csv, delimiter=",", names=True)
    assert "declination_cw_from_north_deg" in table.dtype.names
    assert np.all(np.isfinite(table["declination_cw_from_north_deg"]))
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(result_csv)
    assert frame.shape == (table.size, len(table.dtype.names))
    assert frame["grain"].dtype.kind == "i"
    np.testing.assert_array_equal(frame["declination_cw_from_north_deg"],
                                  table["declination_cw_from_north_deg"])


def test_the_result_entry_names_the_direction_conventions(result_csv):
    """Whoever opens the session file (h5web, silx, h5py) reads the angles' conventions beside
    them, not only the layout version that implies them; the reader still takes the entry."""
    import h5py

    from smm_daq.analysis.mmt.result_read import read_result_entry

    with h5py.File(result_csv.parent / "s.h5", "r") as f:
        grains = f["scan_mmt/grains"]
        assert grains["declination"].attrs["long_name"] == (
            "declination, clockwise from north (+y) towards east (+x)")
        assert grains["inclination"].attrs["long_name"] == "inclination, positive downward (-z)"
        assert grains["declination"].attrs["units"] == "degree"
        # and the columns whose names are abbreviations say what they are
        assert grains["ssr"].attrs["long_name"].startswith("signal strength ratio V/(R^3 d)")
        assert grains["uncertainty_ratio"].attrs["long_name"].startswith("uncertainty ratio")
        assert grains["cov_xz"].attrs["long_name"] == "covariance of mx and mz"
    saved = read_result_entry(result_csv.parent / "s.h5", "scan_mmt")
    with open(result_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    np.testing.assert_allclose(saved.table["declination_deg"],
                               [float(r["declination_cw_from_north_deg"]) for r in rows],
                               rtol=1e-8)
