"""An MMT result holding an unresolved grain's higher-order p-value as NaN is of layout version
5: the release before, which reads up to version 4 and refuses a NaN p-value as damage, lists
it as newer than it reads, as the docs promise of a later release's result, and a version-4
entry (p = 1 for an unresolved grain) is still read."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt import result_read
from smm_daq.analysis.mmt.result_agree import check_resolved
from smm_daq.analysis.mmt.result_file import VERSION_ATTRIBUTE
from smm_daq.analysis.mmt.result_read import NewerLayout, read_result_entry
from smm_daq.cli.main import main
from smm_daq.errors import InputError

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"


@pytest.fixture
def unresolved(tmp_path: Path) -> Path:
    """s.h5 with entry 'r': a quadrupole result of three point grains, grains 7 and 8 at one
    place (unresolved: their p-values NaN)."""
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    pos = np.load(NPZ)["particle_positions"]
    grains = tmp_path / "points.txt"
    np.savetxt(grains, np.c_[pos[[0, 1, 1]], [2e-18, 4e-18, 4e-18], [3, 7, 8]],
               header="x y z volume label", comments="")
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(grains), "--model", "quadrupole", "--sigma-nT", "1",
                 "--out", str(tmp_path / "r.csv"), "--result-entry", "r"]) == 0
    return h5


def test_a_result_with_a_nan_p_value_is_listed_as_newer_by_a_reader_of_version_4(
        unresolved: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Written now: version 5, NaN p-values. A reader that knows only version 4 (the release
    before) does not read the entry and says so as `[mmt, newer]`, not `[mmt, damaged]`."""
    with h5py.File(unresolved, "r") as f:
        assert int(f["r"].attrs[VERSION_ATTRIBUTE]) == 5
        assert np.isnan(f["r/grains/higher_order_p"][()][1:]).all()
    assert read_result_entry(unresolved, "r").version == 5
    monkeypatch.setattr(result_read, "RESULT_VERSION", 4)
    with pytest.raises(NewerLayout) as refused:
        read_result_entry(unresolved, "r")
    said = str(refused.value)
    assert "layout version 5" in said and "version 4 and older" in said, said
    capsys.readouterr()
    assert main(["info", str(unresolved)]) == 2
    out = capsys.readouterr().out
    assert "r  [mmt, newer]" in out and "damaged" not in out, out


def test_a_version_4_result_with_p_one_for_an_unresolved_grain_is_still_read(
        unresolved: Path) -> None:
    with h5py.File(unresolved, "a") as f:
        f["r"].attrs[VERSION_ATTRIBUTE] = 4
        p = f["r/grains/higher_order_p"]
        p[1:] = 1.0
    saved = read_result_entry(unresolved, "r")
    assert saved.version == 4
    _chi2, p_read, resolved = saved.higher_orders()
    assert p_read[1:].tolist() == [1.0, 1.0] and not resolved[1:].any()


def test_a_refusal_naming_the_only_grain_says_no_more(unresolved: Path) -> None:
    """One grain's p-value NaN where its χ² is not: the message said "(and 0 more such
    grains)"."""
    with h5py.File(unresolved, "a") as f:
        f["r/grains/higher_order_p"][0] = np.nan
    with pytest.raises(InputError) as refused:
        read_result_entry(unresolved, "r")
    said = str(refused.value)
    assert "'higher_order_p' holds nan for grain 3" in said and "more such" not in said, said


def test_a_refusal_counts_the_other_grains_in_number() -> None:
    table = {"grain": np.array([1, 2, 3]), "higher_order_p": np.array([0.5, 0.01, 0.02]),
             "higher_order_resolved": np.zeros(3)}
    with pytest.raises(InputError, match=r"grain 2, .* \(and 1 more such grain\); expected"):
        check_resolved(table, "s.h5, entry 'r'")
    table["higher_order_p"][0] = 0.03
    with pytest.raises(InputError, match=r"grain 1, .* \(and 2 more such grains\); expected"):
        check_resolved(table, "s.h5, entry 'r'")
