"""`smm-daq info` and `smm-daq export` on saved MMT result entries read them as every reader
does (`read_result_entry`): a damaged result is refused by `export` with the reader's own
message (exit 2, nothing written) and listed by `info` as damaged, naming the field, beside
the file's other entries, which `info` goes on listing; a result's maps are exported on the
grids the result stores. The source results are the fuzz test's (`test_fuzz_result_entries`)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_fuzz_result_entries import sources  # noqa: F401 (a fixture)
from test_gui_mmt_saved import as_written_before_version_3

from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.cli.main import main
from smm_daq.errors import InputError

UM = 1e-6


def _copy_of(results: dict[str, tuple[Path, str]], kind: str, tmp_path: Path
             ) -> tuple[Path, str]:
    """A copy (s.h5 in tmp_path) of the fuzz tests' source result `kind`, and its entry."""
    source, entry = results[kind]
    path = tmp_path / "s.h5"
    shutil.copy(source, path)
    return path, entry


def _negative_variance(path: Path, entry: str) -> None:
    """The first grain's first variance negative: no solver writes that."""
    with h5py.File(path, "a") as f:
        f[f"{entry}/results/covariance"][0, 0, 0] = -1.0


def _reader_message(path: Path, entry: str) -> str:
    with pytest.raises(InputError) as refused:
        read_result_entry(path, entry)
    return str(refused.value)


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_info_lists_a_damaged_result_as_damaged_naming_the_field_and_lists_the_others(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    with h5py.File(path, "a") as f:
        f.copy(f[entry], "later_mmt")  # an undamaged result listed after the damaged one
    _negative_variance(path, entry)
    said = _reader_message(path, entry)
    before = path.read_bytes()
    code, out, err = _run(capsys, ["info", str(path)])
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == f"{path}: 3 entries"
    assert lines[1].startswith("  scan  [scan, finished]")
    assert lines[2].startswith(f"  {entry}  [mmt, damaged]")
    assert lines[3] == f"    damaged: {said}" and "'covariance'" in said
    assert lines[4].startswith("  later_mmt  [mmt, finished]")
    assert "grains (cuboid), σ " in lines[4] and "cond(Q) " in lines[4]
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and said in errors[0] and "Traceback" not in err
    assert path.read_bytes() == before


def test_info_lists_a_result_with_its_grains_model_sigma_and_condition_number(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        capsys: pytest.CaptureFixture[str]) -> None:
    path, entry = sources["joint"]
    saved = read_result_entry(path, entry)
    code, out, err = _run(capsys, ["info", str(path)])
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith(f"  {entry}  "))
    n = saved.magnetization.shape[0]
    assert len(saved.sigmas) == 2 and saved.sigmas[0] != saved.sigmas[1]
    sigmas = ", ".join(f"{s / 1e-9:.4g}" for s in saved.sigmas)  # a joint result: each scan's
    assert (f"{n} grains (quadrupole), σ {sigmas} nT, "
            f"cond(Q) {saved.condition_number:.3g}") in line, line


@pytest.mark.parametrize("dataset", [None, "fitted/Bz"])
def test_export_of_a_damaged_result_gives_the_readers_message_and_writes_nothing(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str | None) -> None:
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    _negative_variance(path, entry)
    said = _reader_message(path, entry)
    before = path.read_bytes()
    out = tmp_path / "out.csv"
    code, _, err = _run(capsys, ["export", str(path), "--entry", entry, "--csv", str(out),
                                 *(["--dataset", dataset] if dataset else [])])
    assert code == 2 and f"error: {said}" in err, err
    assert not out.exists() and path.read_bytes() == before


def test_export_of_a_fitted_map_beyond_any_field_is_refused_not_written_blank(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An infinite fitted Bz was written as an empty CSV field, read as 'not fitted'."""
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    with h5py.File(path, "a") as f:
        f[f"{entry}/fitted/Bz"][0, 0] = np.inf
    said = _reader_message(path, entry)
    out = tmp_path / "out.csv"
    code, _, err = _run(capsys, ["export", str(path), "--entry", entry, "--dataset",
                                 "fitted/Bz", "--csv", str(out)])
    assert code == 2 and f"error: {said}" in err and "'fitted/Bz'" in said, err
    assert not out.exists()


def test_export_of_a_joint_results_other_scan_is_on_that_scans_grid(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The second scan of a joint result, of the first's shape but scanned 7 µm further along
    x, was exported on the first scan's grid: it is on its own, as the result stores it."""
    path, entry = _copy_of(sources, "joint", tmp_path)
    second = read_result_entry(path, entry).scans[1]
    with h5py.File(path, "a") as f:  # as if scanned there: its entry and the result say so
        for x in (f"{second}/data/x", f"{entry}/scans/{second}/x"):
            f[x][...] += 7 * UM
    saved = read_result_entry(path, entry)
    other = saved.scan_fits[1]
    assert other.name == second and other.residual.x[0] != saved.residual.x[0]
    out = tmp_path / "out.csv"
    code, _, err = _run(capsys, ["export", str(path), "--entry", entry, "--dataset",
                                 f"scans/{other.name}/residual_Bz", "--csv", str(out)])
    assert code == 0, err
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    x_um = sorted({float(r["x_um"]) for r in rows})
    np.testing.assert_allclose(x_um, other.residual.x / UM, atol=1e-6)
    values = np.array([float(r["residual_Bz_nT"]) if r["residual_Bz_nT"] else np.nan
                       for r in rows])
    np.testing.assert_allclose(values, other.residual.bz.ravel() * 1e9, rtol=1e-8)


@pytest.mark.parametrize("damaged", [False, True])
def test_mask_images_of_several_scans_refuse_a_result_as_mmt_invert_does(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damaged: bool) -> None:
    """The images of `export --entry A --entry B --mask-template ...` are for `mmt invert
    --entry A --entry B`, which refuses a result's residual: a result among the entries (whole,
    or damaged) was written as a scan's image, exit 0, and the command printed to use them
    failed."""
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    if damaged:
        _negative_variance(path, entry)
    scan = read_result_entry(sources["cuboid"][0], entry).scans[0]
    images = [tmp_path / "result.png", tmp_path / "scan.png"]
    code, out, err = _run(capsys, ["export", str(path), "--entry", entry, "--entry", scan,
                                   "--mask-template", str(images[0]),
                                   "--mask-template", str(images[1])])
    assert code == 2, out
    assert f"entry '{entry}' is an MMT result" in err and "not a measurement" in err, err
    assert not any(image.exists() for image in images)
    code, _, err = _run(capsys, ["mmt", "invert", str(path), "--entry", entry, "--entry", scan,
                                 "--grains", str(tmp_path / "none.csv"),
                                 "--out", str(tmp_path / "r.csv")])
    assert code == 2 and f"entry '{entry}' is an MMT result" in err, err


@pytest.mark.parametrize("value", [np.nan, -3.0, 2.5])
def test_info_lists_a_result_of_no_whole_count_of_sensors_as_damaged(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float) -> None:
    """A count of fitted sensors no solver writes (another program's float): NaN ended `info`
    and `export` in a ValueError traceback, a negative or fractional count was read as is."""
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    with h5py.File(path, "a") as f:
        del f[f"{entry}/results/n_sensors"]
        f[f"{entry}/results/n_sensors"] = value
    said = _reader_message(path, entry)
    assert f"'n_sensors' is {value!r}; expected a whole number of sensors >= 1" in said
    code, out, err = _run(capsys, ["info", str(path)])
    assert code == 2 and f"damaged: {said}" in out and f"error: {said}" in err, (out, err)


def test_export_of_an_older_joint_results_other_scan_of_no_known_grid_is_refused(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A result written before each scan's grid was stored, its second scan's entry since
    deleted: that scan's maps were exported on the first scan's grid, exit 0, as if known."""
    path, entry = _copy_of(sources, "joint", tmp_path)
    as_written_before_version_3(path, entry)
    second = read_result_entry(path, entry).scans[1]
    with h5py.File(path, "a") as f:
        del f[second]
    out = tmp_path / "out.csv"
    code, _, err = _run(capsys, ["export", str(path), "--entry", entry, "--dataset",
                                 f"scans/{second}/residual_Bz", "--csv", str(out)])
    assert code == 2, err
    assert (f"'scans/{second}/residual_Bz' lies on the grid of scan '{second}', which the "
            "result does not record") in err and "gone or unreadable" in err, err
    assert not out.exists()


def test_info_lists_a_result_of_a_newer_layout_as_newer_not_damaged(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A result a later release wrote is not damaged: `info` listed it as `[mmt, damaged]`,
    which sends a user looking for a corruption the file does not have."""
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    with h5py.File(path, "a") as f:
        f[entry].attrs["mmt_result_version"] = 99
    said = _reader_message(path, entry)
    assert "newer than this smm-daq reads" in said
    code, out, err = _run(capsys, ["info", str(path)])
    assert code == 2 and f"error: {said}" in err, err
    assert f"{entry}  [mmt, newer]" in out and f"not read: {said}" in out, out
    assert "damaged" not in out, out


def test_info_says_a_results_sigma_as_mmt_invert_does(
        sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """σ of 1000 nT or more: `mmt invert` says 2861 nT (4 significant digits), `info` said
    2.86e+03."""
    path, entry = _copy_of(sources, "cuboid", tmp_path)
    with h5py.File(path, "a") as f:
        stored = []
        f[entry].visititems(lambda name, obj: stored.append(obj) if name.split("/")[-1] in (
            "sigma", "sigma_T") and isinstance(obj, h5py.Dataset) else None)  # each layout's
        assert stored
        for ds in stored:
            ds[()] = 2861.4e-9
    assert read_result_entry(path, entry).sigmas[0] == pytest.approx(2861.4e-9)
    code, out, err = _run(capsys, ["info", str(path)])
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith(f"  {entry}  "))
    assert "grains (cuboid), σ 2861 nT, cond(Q) " in line, line
