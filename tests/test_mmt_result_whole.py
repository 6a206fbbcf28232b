"""A saved MMT result is whole on its own: it says its layout version (a newer one is refused),
holds its grains' format, cuboids and absolute path, and its sensor's thickness, so that it is
shown again, months later on another machine, without the grain file and as it was fitted."""

from __future__ import annotations

import os
from dataclasses import replace

import h5py
import numpy as np
import pytest
from test_gui_mmt import write_cuboid_session
from test_gui_mmt_saved import as_written_before_version_3, as_written_by_version_3

from gui.mmt_view import grain_field
from smm_daq.analysis.grains import read_grains
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.result_file import RESULT_VERSION, grain_parameters
from smm_daq.analysis.mmt.result_read import grains_from_file, read_result_entry
from smm_daq.analysis.mmt.scan_fits import fits_of
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.products import Quantity

UM = 1e-6


@pytest.fixture
def cuboid_result(tmp_path, monkeypatch):
    """Three cuboid grains inverted by the command line run in the session file's folder with
    the grain file named relative to it (entry 'scan_mmt' of s.h5)."""
    path, grains = write_cuboid_session(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["mmt", "invert", "s.h5", "--entry", "scan", "--grains", "grains.csv",
                 "--out", "r.csv"]) == 0
    return path, grains


def test_the_entry_says_its_layout_version_and_a_newer_one_is_refused(cuboid_result):
    path, _grains = cuboid_result
    with h5py.File(path, "r") as f:
        assert f["scan_mmt"].attrs["mmt_result_version"] == RESULT_VERSION == 5
    assert read_result_entry(path, "scan_mmt").version == RESULT_VERSION
    with h5py.File(path, "a") as f:
        f["scan_mmt"].attrs["mmt_result_version"] = RESULT_VERSION + 1
    before = path.read_bytes()
    with pytest.raises(InputError) as caught:
        read_result_entry(path, "scan_mmt")
    text = str(caught.value)
    assert "entry 'scan_mmt'" in text and "layout version 6" in text
    assert "version 5 and older" in text and "newer smm-daq" in text
    assert path.read_bytes() == before


@pytest.mark.parametrize("older", [as_written_by_version_3, as_written_before_version_3])
def test_an_older_layouts_declination_counter_clockwise_from_x_is_read_from_north(
        cuboid_result, older):
    """Layouts before version 4 stored the declination counter-clockwise from +x; it is read
    clockwise from +y (north) towards +x, as today's results and the stereonet give it, and
    its SD as stored (the same in both conventions)."""
    path, _grains = cuboid_result
    today = read_result_entry(path, "scan_mmt").table
    older(path, "scan_mmt")
    with h5py.File(path, "r") as f:
        g = f["scan_mmt/grains"]
        m, stored = np.c_[g["mx"][()], g["my"][()]], g["declination"][()]
    np.testing.assert_allclose(stored, np.degrees(np.arctan2(m[:, 1], m[:, 0])) % 360,
                               atol=1e-9)  # as version 3 wrote it
    read = read_result_entry(path, "scan_mmt").table
    np.testing.assert_allclose(read["declination_deg"], today["declination_deg"], atol=1e-9)
    np.testing.assert_allclose(read["declination_deg"],
                               np.degrees(np.arctan2(m[:, 0], m[:, 1])) % 360, atol=1e-9)
    assert np.array_equal(read["sd_declination_deg"], today["sd_declination_deg"])


def test_cuboid_grains_their_format_and_absolute_path_are_stored(cuboid_result, tmp_path):
    path, grains = cuboid_result
    with h5py.File(path, "r") as f:
        params = f["scan_mmt/process/parameters"]
        assert params["grains"].asstr()[()] == "grains.csv"  # as typed
        assert params["grains_absolute"].asstr()[()] == str(grains.resolve())
        assert params["grain_format"].asstr()[()] == "cuboids"
        assert f["scan_mmt/grain_cuboids/x"].compression == "gzip"
    truth, absolute = read_grains(grains), str(grains.resolve())
    grains.unlink()  # another machine: the grain file is not there
    saved = read_result_entry(path, "scan_mmt")
    assert saved.shapes and saved.grain_format == "cuboids"
    assert saved.grain_file == "grains.csv" and saved.grain_file_absolute == absolute
    np.testing.assert_array_equal(saved.grains.cuboids, truth.cuboids)
    np.testing.assert_array_equal(saved.grains.labels, truth.labels)
    np.testing.assert_array_equal(saved.grains.grain, truth.grain)
    assert grains_from_file(saved, []) == (saved, "")  # nothing looked up, nothing missing


def _put(params: h5py.Group, values: dict[str, str]) -> None:
    for key, value in values.items():
        del params[key]
        params[key] = value


def test_a_grain_file_named_in_no_utf8_is_found_by_the_name_the_entry_stores(cuboid_result,
                                                                           tmp_path):
    """A grain file typed in a Latin-1 terminal (its byte 0xe9 no UTF-8) is stored escaped,
    `caf\\xe9.csv`; an entry without its grains' cuboids (a point model's) finds the file by
    it. Unfixed, the escape's four characters were taken for the name, and no file found."""
    path, grains = cuboid_result
    raw = os.fsencode(tmp_path) + b"/caf\xe9.csv"
    try:
        os.rename(grains, raw)
    except OSError:
        pytest.skip("this file system refuses a name that is not UTF-8")
    with h5py.File(path, "a") as f:  # as the writer records it (the command ran here)
        _put(f["scan_mmt/process/parameters"],
             grain_parameters(os.fsdecode(b"caf\xe9.csv"), "csv"))
        del f["scan_mmt/grain_cuboids"]
    saved = read_result_entry(path, "scan_mmt")
    assert not saved.shapes and saved.grain_file_absolute == f"{tmp_path}/caf\\xe9.csv"
    found, note = grains_from_file(saved, [])
    assert note == "" and found.shapes
    np.testing.assert_array_equal(found.grains.cuboids, read_grains(os.fsdecode(raw)).cuboids)


def test_an_earlier_entry_s_grain_file_named_as_an_escape_reads_as_named(cuboid_result,
                                                                        tmp_path, monkeypatch):
    """An entry written before names were escaped (before layout version 3, the grain file
    as typed alone) whose file is named with a backslash, `caf\\xe9.csv` as typed: it is
    found under that name, beside the session file from another folder, not taken for the
    escape of a byte alone (no such file)."""
    path, grains = cuboid_result
    as_written_before_version_3(path, "scan_mmt")
    grains.rename(tmp_path / "caf\\xe9.csv")
    with h5py.File(path, "a") as f:
        _put(f["scan_mmt/process/parameters"], {"grains": "caf\\xe9.csv"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    saved = read_result_entry(path, "scan_mmt")
    assert (saved.grain_file, saved.grain_file_absolute) == ("caf\\xe9.csv", "")
    found, note = grains_from_file(saved, [saved.grain_file])
    assert note == "" and found.shapes


def test_the_stored_format_is_the_grains_and_damaged_cuboids_are_refused(cuboid_result,
                                                                        tmp_path):
    path, grains = cuboid_result
    community = tmp_path / "grains.txt"  # the cuboid library's text: half edges, depth down
    c = read_grains(grains)
    rows = [f"{x} {y} {-z} {dx / 2} {dy / 2} {dz / 2} {label}" for (x, y, z, dx, dy, dz), label
            in zip(c.cuboids / UM, c.labels[c.grain], strict=True)]
    community.write_text("\n".join(rows) + "\n")
    assert main(["mmt", "invert", "s.h5", "--entry", "scan", "--grains=grains.txt",
                 "--grain-format=mmt", "--out", "m.csv", "--result-entry", "m"]) == 0
    with h5py.File(path, "a") as f:
        assert f["m/process/parameters/grain_format"].asstr()[()] == "mmt"
        del f["m/process/parameters/command"]  # the format is not taken from the command
    assert read_result_entry(path, "m").grain_format == "mmt"
    with h5py.File(path, "a") as f:
        f["m/grain_cuboids/grain"][0] = 99
    with pytest.raises(InputError, match="holds the cuboids of other grains than the table"):
        read_result_entry(path, "m")


def volume_sensor_session(tmp_path):
    """Two point grains under a volume sensor 2 × 2 × 4 µm (the multipole library's) 3 µm
    above the sample top; the scan records the sensor's thickness as `import mpe` does."""
    grains = point_grains(np.array([[8, 9, -2], [14, 12, -3]]) * UM, np.array([4.0, 6.0]) * UM**3)
    x = y = np.arange(0, 22.1, 1) * UM
    X, Y = np.meshgrid(x, y)
    size = (2 * UM, 2 * UM, 4 * UM)
    model = MultipoleModel.build(grains, Sensor.from_size(size), "dipole")
    m = np.array([[3e4, -1e4, 2e4], [-2e4, 1e4, 1e4]])
    bz = forward(model, np.c_[X.ravel(), Y.ravel(), np.full(X.size, 3 * UM)], m.ravel())
    data = MapData(bz=bz.reshape(X.shape) + np.random.default_rng(1).normal(0, 1e-9, X.shape),
                   x=x, y=y, height=3 * UM, sensor_size=size[:2], name="scan")
    path = tmp_path / "v.h5"
    write_map_entry(path, data, kind="import",
                    extra={"instrument/sensor/thickness": Quantity(size[2], "m")})
    write_points(tmp_path / "g.txt", grains)
    return path, data, grains, size


def test_a_grain_s_own_field_is_its_part_of_a_volume_sensor_s_fitted_map(tmp_path):
    path, data, grains, size = volume_sensor_session(tmp_path)
    fresh = invert_scans([Scan(data, 3 * UM, size)], grains, model="dipole")
    assert main(["mmt", "invert", str(path), "--entry", "scan", "--grains",
                 str(tmp_path / "g.txt"), "--grain-format", "points", "--out",
                 str(tmp_path / "r.csv")]) == 0
    saved = read_result_entry(path, "scan_mmt")
    with h5py.File(path, "r") as f:
        assert f["scan_mmt/instrument/sensor/thickness"][()] == size[2]
    assert saved.scan_fits[0].sensor_size == size
    for result in (fresh, saved):
        fitted = result.fitted.bz
        total = sum(grain_field(result, g).bz for g in range(2))
        # the grains' own fields add up to the fitted map
        np.testing.assert_allclose(total, fitted, rtol=1e-9, atol=1e-12 * np.abs(fitted).max())
    # as an area sensor's, they would not
    area = replace(fits_of(fresh)[0], sensor_size=size[:2])
    total = sum(grain_field(fresh, g, area).bz for g in range(2))
    assert np.abs(total - fresh.fitted.bz).max() > 0.05 * np.abs(fresh.fitted.bz).max()


@pytest.mark.parametrize("given_um", [None, 0.0, 2.0])
def test_a_volume_sensor_result_written_before_version_3_takes_the_thickness_fitted_with(
        tmp_path, monkeypatch, given_um):
    """Such an entry records no thickness, but each scan's entry in the file does, and the
    recorded command its --sensor-thickness-um, which the fit took instead: a grain's own
    field is computed with the thickness the result was fitted with, for every scan shown."""
    path, data, _grains, size = volume_sensor_session(tmp_path)
    write_map_entry(path, data.with_bz(data.bz, name="again"), kind="import",
                    extra={"instrument/sensor/thickness": Quantity(size[2], "m")})
    given = [] if given_um is None else [f"--sensor-thickness-um={given_um:g}"]
    command = ["mmt", "invert", str(path), "--entry", "scan", "--entry", "again", "--grains",
               str(tmp_path / "g.txt"), "--grain-format", "points", "--model", "dipole", *given,
               "--out", str(tmp_path / "r.csv")]
    monkeypatch.setattr("sys.argv", ["smm-daq", *command])  # the command the entry records
    assert main(command) == 0
    as_written_before_version_3(path, "scan_mmt")
    saved = read_result_entry(path, "scan_mmt")
    assert saved.version == 2
    thickness = size[2] if given_um is None else given_um * UM
    fitted_with = (*size[:2], thickness) if thickness > 0 else size[:2]
    assert [fit.sensor_size for fit in saved.scan_fits] == [fitted_with, fitted_with]
    for fit in saved.scan_fits:
        fitted = fit.fitted.bz
        total = sum(grain_field(saved, g, fit).bz for g in range(2))
        np.testing.assert_allclose(total, fitted, rtol=1e-9, atol=1e-12 * np.abs(fitted).max())
