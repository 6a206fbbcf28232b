"""The field an induced map records is that of its scans' difference: a remanent scan taken in
a field (−B, or along another axis) leaves the response to a − b, not to a; an entry written
before, holding a, reads as a − b where the remanent scan's field is in the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_susceptibility import STEP, grains, layer_bz

from smm_daq.analysis.field_series import noise_ratio
from smm_daq.analysis.induced_entry import subtract_entries
from smm_daq.analysis.subtract_inputs import (
    Footprint,
    induced_footprint,
    read_source,
    subtracted_scans,
)
from smm_daq.analysis.susceptibility import invert_susceptibility
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

MU0 = 4e-7 * np.pi
GEOMETRY = {"height": 20e-6, "thickness": 10e-6, "sensor_size": (5e-6, 5e-6)}
B = np.array([0.0, 30e-6, 40e-6])  # T, 50 µT
NOISE = 2e-9


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A file of four scans of one sample, remanent magnetization and χ: at +B ('plus'),
    −B ('minus') and zero field ('zero'), and one along x ('side'), and their induced maps
    'pz', 'pm', 'ps' ('plus' − each other) and 'mz' ('minus' − 'zero'); and the sample's χ."""
    rng = np.random.default_rng(3)
    chi, _ = grains(rng, 24, count=3)
    remanence = layer_bz(rng.normal(size=chi.shape) * 50.0, (0.0, 0.0, 1.0), **GEOMETRY)
    x = np.arange(24) * STEP
    path = tmp_path_factory.mktemp("subfield") / "s.h5"
    for name, field in (("plus", B), ("minus", -B), ("zero", np.zeros(3)),
                        ("side", np.array([50e-6, 0.0, 0.0]))):
        induced = (layer_bz(chi * np.linalg.norm(field) / MU0, field, **GEOMETRY)
                   if np.any(field) else 0.0)
        bz = remanence + induced + rng.normal(size=chi.shape) * NOISE
        write_map_entry(path, MapData(bz, x, x, height=GEOMETRY["height"],
                                      sensor_size=GEOMETRY["sensor_size"],
                                      applied_field=field, name=name), kind="import")
    for name, in_field, remanent in (("pz", "plus", "zero"), ("pm", "plus", "minus"),
                                     ("ps", "plus", "side"), ("mz", "minus", "zero")):
        subtract_entries(path, in_field, remanent, name, register=False)
    return path, chi


def test_plus_minus_minus_records_2b_and_gives_the_chi_of_plus_minus_zero(scans) -> None:
    """+B − (−B) holds the response to 2B: recorded as B, χ came out twice too high."""
    path, chi = scans
    pz, pm = read_source(path, "pz"), read_source(path, "pm")
    np.testing.assert_allclose(pz.applied_field, B, rtol=1e-12)
    np.testing.assert_allclose(pm.applied_field, 2 * B, rtol=1e-12)
    grain = chi > 0  # the support: the grains' χ well determined under a field mostly up
    one = invert_susceptibility(pz, GEOMETRY["thickness"], noise=np.sqrt(2) * NOISE,
                                support=grain)
    # one λ for both: Tikhonov is then linear in the map, and χ alike within the noise
    other = invert_susceptibility(pm, GEOMETRY["thickness"], regularization=one.regularization,
                                  support=grain)
    assert abs(np.sum(one.values[grain]) / np.sum(chi[grain]) - 1.0) < 0.02
    ratio = np.sum(other.values[grain]) / np.sum(one.values[grain])
    assert abs(ratio - 1.0) < 0.02, ratio


def test_the_entry_records_both_scans_fields_in_its_process(scans) -> None:
    path, _ = scans
    with h5py.File(path, "r") as f:
        p = f["pm/process/parameters"]
        np.testing.assert_allclose(p["in_field_applied_field"][()], B, rtol=1e-12)
        np.testing.assert_allclose(p["remanent_applied_field"][()], -B, rtol=1e-12)
        assert p["remanent_applied_field"].attrs["units"] == "T"
        assert p["applied_field_from"][()].decode() == "in-field − remanent"
        np.testing.assert_allclose(f["pm/sample/magnetic_field"][()], 2 * B, rtol=1e-12)


def test_fields_along_different_axes_record_their_difference_and_info_says_so(
        scans, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = scans
    np.testing.assert_allclose(read_map(path, "ps").applied_field,
                               B - np.array([50e-6, 0.0, 0.0]), rtol=1e-12)
    assert main(["info", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "field (-50, 30, 40) µT" in lines["ps"]
    assert ("field: in-field (0, 30, 40) µT − remanent (50, 0, 0) µT (along different axes: "
            "the response to their difference, along neither scan's field)") in lines["ps"]
    assert "field: in-field (0, 60, 80)" not in lines["pm"]
    assert "field: in-field (0, 30, 40) µT − remanent (-0, -30, -40) µT" in lines["pm"]
    assert "remanent" not in lines["pz"].split("from")[0]  # zero field: nothing more said


def test_a_recipes_induced_footprint_has_the_difference_of_its_scans_fields() -> None:
    axis = np.arange(3) * STEP
    a = Footprint("a", axis, axis, applied_field=B)
    b = Footprint("b", axis, axis, applied_field=-B)
    np.testing.assert_allclose(induced_footprint("i", a, b).applied_field, 2 * B)
    np.testing.assert_allclose(induced_footprint("i", a, b, induced=True).applied_field, B)


def _as_written_before(path: Path, entry: str, in_field: np.ndarray) -> None:
    """Entry `entry` as a release before the rule wrote it: the in-field scan's field, no
    record of how it was made."""
    with h5py.File(path, "a") as f:
        f[f"{entry}/sample/magnetic_field"][...] = in_field
        del f[f"{entry}/process/parameters/applied_field_from"]


def test_an_entry_written_before_reads_as_its_scans_difference_unrewritten(
        scans, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.h5"
    path.write_bytes(scans[0].read_bytes())
    _as_written_before(path, "pm", B)
    m = read_map(path, "pm")
    crop = m.with_bz(m.bz, name="pm_crop", sources=("pm",), applied_field=B)  # as then copied
    write_map_entry(path, crop, kind="cropped")
    # a χ entry an earlier release made from it: worked out with the in-field scan's field
    write_map_entry(path, crop.with_bz(m.bz, name="chi_pm"), kind="susceptibility")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for name in ("pm", "pm_crop"):
        np.testing.assert_allclose(read_source(path, name).applied_field, 2 * B, rtol=1e-12)
    listed = {e.name: e.applied_field for e in list_entries(path)}
    np.testing.assert_allclose(listed["pm"], 2 * B, rtol=1e-12)
    np.testing.assert_allclose(listed["pz"], B, rtol=1e-12)  # zero field: as stored
    assert main(["info", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert ("field: an earlier release stored the in-field scan's (0, 30, 40) µT; read as it "
            "minus the remanent 'minus' (-0, -30, -40) µT") in lines["pm"]
    assert "(made from 'pm')" in lines["pm_crop"]
    assert ("worked out with the field an earlier release stored with 'pm', (0, 30, 40) µT, "
            "not the (0, 60, 80) µT it holds the response to: work it out again"
            ) in lines["chi_pm"]
    assert "field (0, 30, 40) µT" in lines["chi_pm"]  # read as stored: its χ was made so
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(("fields", "pairs", "ratio"), [
    ([1.0, -1.0], [("a", "r"), ("b", "r")], np.sqrt(0.5)),  # the shared scan cancels
    ([1.0, 2.0], [("a", "r"), ("b", "r")], np.sqrt(1.4)),  # c_r = −3/√5: it adds
    ([1.0, 2.0, -1.0], [("a", "r"), ("b", "s"), None], 1.0),  # none shared: one map's
    ([2.0, 1.0], [("a", "m"), ("a", "z")], np.sqrt(1.4)),  # the in-field scan shared
])
def test_the_noise_of_a_field_series_follows_the_scans_its_maps_share(fields, pairs,
                                                                       ratio) -> None:
    """As a Monte Carlo over noise draws gave it (1/√2 at ±B sharing R, 1.18 at B, 2B)."""
    assert noise_ratio(np.array(fields), pairs) == pytest.approx(ratio, rel=1e-12)


def test_susceptibility_of_maps_sharing_a_scan_takes_the_combinations_noise(
        scans, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'pz' and 'mz' at ±B share 'zero', whose noise cancels from their combination: the
    --noise-nT of one map is √2 times the combination's."""
    path = tmp_path / "series.h5"
    path.write_bytes(scans[0].read_bytes())
    assert subtracted_scans(path, ["pz", "mz", "ps"]) == [("plus", "zero"), ("minus", "zero"),
                                                           ("plus", "side")]
    assert main(["susceptibility", str(path), "--entry", "pz", "--entry", "mz", "--name",
                 "chi", "--thickness-um", "10", "--noise-nT", "4"]) == 0
    out = capsys.readouterr().out
    assert ("noise of the combination: 2.828 nT, 0.707 × --noise-nT (one induced map's, each "
            "alike, its two scans of equal noise): the scan 'zero' shared by two maps or more"
            ) in out
    with h5py.File(path, "r") as f:
        assert f["chi/results/noise"][()] == pytest.approx(4e-9 / np.sqrt(2), rel=1e-12)


def test_two_induced_maps_subtracted_before_read_as_the_in_field_ones_corrected(
        scans, tmp_path: Path) -> None:
    """Before and after a treatment: 'pm' minus 'pz', as an earlier release wrote it (the
    in-field map's field as stored, B), holds a change of the response to 'pm''s 2B."""
    path = tmp_path / "old.h5"
    path.write_bytes(scans[0].read_bytes())
    _as_written_before(path, "pm", B)
    m = read_map(path, "pm")
    write_map_entry(path, m.with_bz(m.bz, name="treated", sources=("pm", "pz"),
                                    applied_field=B), kind="induced")
    np.testing.assert_allclose(read_source(path, "treated").applied_field, 2 * B, rtol=1e-12)
