"""The multipole models and the `mpe` importer against the multipole library itself.

The files in tests/data named `*mpe_lib*` were written by the public `mmt_multipole_inversion`
(tests/data/make_mpe_library_fixtures.py ran it): its sample files as its `save_data` writes
them, scans made by its own forward models (point sensors up to the octupole; area and volume
sensors up to the quadrupole), its own least-squares inversions of them with their covariance,
and its results as its `save_multipole_moments` writes them. The basis, the normalisation, the
signs, the area and volume averages, the sensor's place and the grid are each held against
numbers it made, not against our reading of its documentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smm_daq.analysis.mmt.formats import mpe
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, to_library
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans

SIGMA = 1e-9  # T, the σ the library's covariance was made with


def _invert(data_dir: Path, name: str, model: str) -> tuple[object, object]:
    scan, _ = mpe.read_scan(data_dir / f"MetaDict_{name}.json",
                            data_dir / f"MagneticSample_{name}.npz", name=name)
    grains = mpe.read_particles(data_dir / f"MagneticSample_{name}.npz")
    geo = mpe.read_geometry(data_dir / f"MetaDict_{name}.json")  # a volume's thickness too
    result = invert_scans([Scan(scan, scan.height, geo.sensor_size, sigma=SIGMA)], grains,
                          model=model)
    return result, grains


@pytest.mark.parametrize(("name", "model"), [("mpe_lib_point", "octupole"),
                                             ("mpe_lib_area", "quadrupole"),
                                             ("mpe_lib_volume", "quadrupole")])
def test_we_recover_the_sources_the_library_scanned_and_its_uncertainties(test_data, name,
                                                                          model):
    """Noise-free scans made by the library's forward models: ours must be the same model to
    recover its sources to rounding (found: 2e-12 SD for point sensors up to the octupole,
    3e-11 SD for area sensors, 5e-10 SD for volume sensors). The library's own inversion (an
    unscaled pseudo-inverse) lands within 0.011 SD of them (2.6e-7 SD for area sensors, 1.5e-7
    SD for volume sensors); ours within 0.02 SD of it.
    Our per-grain covariance blocks are its σ² (QᵀQ)⁻¹ blocks, to its pseudo-inverse's
    rounding (1e-4)."""
    ref = np.load(test_data / f"{name}_reference.npz")
    result, grains = _invert(test_data, name, model)
    ours = to_library(result.coefficients, grains.volume)  # the dipole as a moment, A m²
    sd = ref["inv_moments_std"]
    truth = ref["true_multipole_moments"]
    assert np.all(np.abs(ours - truth) <= 1e-9 * sd)
    assert np.all(np.abs(ours - ref["inv_multipole_moments"]) <= 2e-2 * sd)
    scale = np.ones(ours.shape)
    scale[:, :3] = grains.volume[:, None]  # ours are of M (A/m) for the dipole
    ours_sd = np.sqrt(np.einsum("gii->gi", result.coefficient_covariance)) * scale
    np.testing.assert_allclose(ours_sd, sd, rtol=1e-3)
    if "covariance_matrix" in ref:
        k = ours.shape[1]
        full = ref["covariance_matrix"]
        for g in range(grains.n_grains):
            block = full[g * k:(g + 1) * k, g * k:(g + 1) * k]
            mine = result.coefficient_covariance[g] * np.outer(scale[g], scale[g])
            norm = np.sqrt(np.outer(np.diag(block), np.diag(block)))  # to correlations
            np.testing.assert_allclose(mine / norm, block / norm, atol=1e-3)


def test_the_grid_of_a_library_release_that_named_its_origin_scan_origin(test_data):
    """The PyPI release 1.0 writes the lower-left sensor as "Scan origin x/y" (later releases:
    "Sensor origin x/y"); read as the same thing, its dipoles are found where they are."""
    meta = json.loads((test_data / "MetaDict_mpe_lib_v1.json").read_text())
    assert "Scan origin x" in meta and "Sensor origin x" not in meta
    scan, _ = mpe.read_scan(test_data / "MetaDict_mpe_lib_v1.json",
                            test_data / "MagneticSample_mpe_lib_v1.npz")
    assert scan.x[0] == pytest.approx(meta["Scan origin x"])
    assert scan.y[0] == pytest.approx(meta["Scan origin y"])
    truth = np.load(test_data / "MagneticSample_mpe_lib_v1.npz")["dipole_moments"]
    result, grains = _invert(test_data, "mpe_lib_v1", "dipole")
    np.testing.assert_allclose(result.coefficients * grains.volume[:, None], truth,
                               rtol=1e-6, atol=1e-6 * np.abs(truth).max())


def test_both_names_of_the_origin_must_agree(test_data, tmp_path):
    from smm_daq.errors import InputError

    meta = json.loads((test_data / "MetaDict_mpe_lib_point.json").read_text())
    meta["Scan origin x"] = meta["Sensor origin x"] + 1e-6
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"key 'Sensor origin x' is 2e-06 and 'Scan origin x' "
                                         r"3(\.0+\d*)?e-06; expected one origin"):
        mpe.read_geometry(path)


def test_library_out_holds_the_librarys_arrays_under_its_names(test_data, tmp_path):
    """`--library-out` (and the tab's NPZ export) writes the library's results as the library
    names them: its moments as `inv_multipole_moments` and their SDs as `inv_moments_std`, the
    attribute a library user reads, as make_mpe_library_fixtures.py read it, and as
    `moments_std`, the key the library's own `save_multipole_moments` writes (the test below
    holds the export against a file the library wrote)."""
    ref = np.load(test_data / "mpe_lib_area_reference.npz")
    result, grains = _invert(test_data, "mpe_lib_area", "quadrupole")
    out = tmp_path / "InvMagQuad_area.npz"
    mpe.write_library_results(out, result.coefficients, result.coefficient_covariance, grains)
    got = np.load(out)
    sd = ref["inv_moments_std"]
    assert np.all(np.abs(got["inv_multipole_moments"] - ref["inv_multipole_moments"])
                  <= 2e-2 * sd)
    np.testing.assert_allclose(got["inv_moments_std"], sd, rtol=1e-3)
    np.testing.assert_array_equal(got["moments_std"], got["inv_moments_std"])


def test_a_library_volume_scan_is_read_as_the_box_the_library_averaged_over(test_data):
    """The library's volume sensor is the box Scan height Hz ± hz about each grid point,
    `Sensor dimensions` [hx, hy, hz] its half-lengths, its flux divided by 8 hx hy hz: the
    mean Bz over the box. Read by us, each sensor lies where the library put it (its
    `scan_positions`), with the half-sizes it integrated over (its `sensor_dims`), and our
    Green's rows there are its forward matrix's rows, column by column (the dipole's per unit
    M, so V times its per unit moment)."""
    ref = np.load(test_data / "mpe_lib_volume_reference.npz")
    scan, geo = mpe.read_scan(test_data / "MetaDict_mpe_lib_volume.json",
                              test_data / "MagneticSample_mpe_lib_volume.npz")
    X, Y = np.meshgrid(scan.x, scan.y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, scan.height)]
    np.testing.assert_allclose(sensors, ref["scan_positions"], rtol=0, atol=1e-18)
    sensor = Sensor.from_size(geo.sensor_size)
    np.testing.assert_allclose((sensor.p, sensor.q, sensor.t), ref["sensor_dims"], rtol=1e-15)
    grains = mpe.read_particles(test_data / "MagneticSample_mpe_lib_volume.npz")
    model = MultipoleModel.build(grains, sensor, "quadrupole")
    ours = model.block(sensors[ref["Q_index"]], np.empty((ref["Q_index"].size, model.n_columns)))
    per_moment = np.ones((grains.n_grains, 8))
    per_moment[:, :3] = grains.volume[:, None]
    want = ref["Q_rows"] * per_moment.ravel()
    err = np.abs(ours - want) / np.abs(want).max(axis=0)  # of each column's largest
    assert err.max() < 1e-9


def test_library_out_is_what_the_library_writes_and_its_forward_model_reads(test_data, tmp_path):
    """`--library-out` against the library's own definitions. Every array its
    `save_multipole_moments` wrote (InvMagQuad_mpe_lib_volume.npz, written by the library)
    is in ours under its name, with its shape, kind of number and values: the moments, their
    SDs and the labels. Our moments through the library's own forward matrix (rows of it kept
    in the reference) give back the scan it made, so their order, normalisation and units
    (A m², A m³) are the library's; and our `covariance` blocks are its covariance matrix's
    diagonal blocks, in its units."""
    lib = np.load(test_data / "InvMagQuad_mpe_lib_volume.npz")
    ref = np.load(test_data / "mpe_lib_volume_reference.npz")
    result, grains = _invert(test_data, "mpe_lib_volume", "quadrupole")
    out = tmp_path / "InvMagQuad_ours.npz"
    mpe.write_library_results(out, result.coefficients, result.coefficient_covariance, grains)
    got = np.load(out)
    for key in lib.files:
        assert (got[key].shape, got[key].dtype.kind) == (lib[key].shape, lib[key].dtype.kind)
    np.testing.assert_array_equal(got["identifier"], lib["identifier"])
    sd = lib["moments_std"]
    assert np.all(np.abs(got["inv_multipole_moments"] - lib["inv_multipole_moments"])
                  <= 1e-6 * sd)
    np.testing.assert_allclose(got["moments_std"], sd, rtol=1e-6)
    bz = np.load(test_data / "MagneticSample_mpe_lib_volume.npz")["Bz_array"].ravel()
    want = bz[ref["Q_index"]]
    np.testing.assert_allclose(ref["Q_rows"] @ got["inv_multipole_moments"].ravel(), want,
                               rtol=0, atol=1e-9 * np.abs(want).max())
    k = got["inv_multipole_moments"].shape[1]
    full = ref["covariance_matrix"]
    for g in range(grains.n_grains):
        block = full[g * k:(g + 1) * k, g * k:(g + 1) * k]
        err = np.abs(got["covariance"][g] - block) / np.outer(sd[g], sd[g])
        assert err.max() < 1e-6


def test_the_library_s_volume_scan_imported_and_inverted_on_the_command_line(test_data,
                                                                              tmp_path):
    """`import mpe` then `mmt invert --library-out`, as a library user would run them on its
    volume-sensor files: the sensor's thickness and height travel through the session file
    as the library meant them (2 hz, the box centred on Hz), and the sources come out as the
    library made them, in its units."""
    from smm_daq.cli.main import main

    h5, out = tmp_path / "s.h5", tmp_path / "InvMagQuad.npz"
    npz = str(test_data / "MagneticSample_mpe_lib_volume.npz")
    assert main(["import", "mpe", str(test_data / "MetaDict_mpe_lib_volume.json"), npz,
                 "--out", str(h5), "--name", "vol"]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "vol", "--grain-format", "mpe",
                 "--grains", npz, "--model", "quadrupole", "--sigma-nT", "1",
                 "--out", str(tmp_path / "r.csv"), "--library-out", str(out)]) == 0
    ref = np.load(test_data / "mpe_lib_volume_reference.npz")
    got = np.load(out)
    sd = ref["inv_moments_std"]
    assert np.all(np.abs(got["inv_multipole_moments"] - ref["true_multipole_moments"])
                  <= 1e-6 * sd)
    np.testing.assert_allclose(got["moments_std"], sd, rtol=1e-6)
