"""The MMT community's point-source files (multipole library JSON + NPZ, point lists, Dragonfly
exports) and masks of bad pixels, from fixtures written as the community writes them."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smm_daq.analysis.mmt.formats import dragonfly, mpe, points
from smm_daq.analysis.mmt.masks import read_mask
from smm_daq.analysis.mmt.models.multipole import point_grains
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

# the Dragonfly files read here give no sample top on purpose; its warning is checked by a
# pytest.warns below, which sees it despite this filter
pytestmark = pytest.mark.filterwarnings("ignore:.*no sample top given")

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
UM = 1e-6


def test_mpe_scan_and_particles_invert_to_the_moments_choclo_made():
    data, geo = mpe.read_scan(JSON, NPZ, name="demo")
    assert data.shape == (16, 20) and geo.height == 2e-6
    assert data.x[1] - data.x[0] == pytest.approx(1e-6) and data.sensor_size == (0.0, 0.0)
    grains = mpe.read_particles(NPZ)
    assert grains.labels.tolist() == [1, 2, 3]
    res = invert_scans([Scan(data, geo.height, geo.sensor_size)], grains, model="dipole")
    truth = np.load(NPZ)["dipole_moments"]
    moment_sd = np.sqrt(np.einsum("gii->gi", res.covariance)) * grains.volume[:, None]
    assert np.all(np.abs(res.magnetization * grains.volume[:, None] - truth) < 5 * moment_sd)


def test_library_results_roundtrip(tmp_path):
    grains = mpe.read_particles(NPZ)
    coef = np.arange(24.0).reshape(3, 8) + 1
    cov = np.stack([np.diag(np.arange(1.0, 9.0))] * 3)
    out = tmp_path / "InvMagQuad_demo.npz"
    mpe.write_library_results(out, coef, cov, grains)
    got = np.load(out)
    assert np.allclose(got["inv_multipole_moments"][:, :3], coef[:, :3] * grains.volume[:, None])
    assert np.allclose(got["inv_multipole_moments"][:, 3:], coef[:, 3:])
    assert np.allclose(got["moments_std"][:, 0], grains.volume)
    assert got["identifier"].tolist() == [1, 2, 3]


def test_library_results_cut_short_leave_the_old_file_and_no_part(tmp_path, monkeypatch):
    grains = mpe.read_particles(NPZ)
    coef = np.arange(24.0).reshape(3, 8) + 1
    cov = np.stack([np.diag(np.arange(1.0, 9.0))] * 3)
    out = tmp_path / "InvMagQuad_demo.npz"
    out.write_bytes(b"the finished export of before")
    real = np.lib.format.write_array
    calls = []

    def full_disk(fid, array, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(fid, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", full_disk)
    with pytest.raises(OSError, match="No space"):
        mpe.write_library_results(out, coef, cov, grains)
    assert out.read_bytes() == b"the finished export of before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["InvMagQuad_demo.npz"]
    monkeypatch.setattr(np.lib.format, "write_array", real)
    bare = tmp_path / "bare"  # the name checked is the one written: np.savez added ".npz"
    mpe.write_library_results(bare, coef, cov, grains)
    assert np.load(bare)["identifier"].tolist() == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["InvMagQuad_demo.npz", "bare"]


def test_mpe_sensor_dimensions_are_half_lengths(tmp_path):
    meta = json.loads(JSON.read_text())
    meta["Sensor dimensions"] = [0.5e-6, 0.25e-6, 0.1e-6]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(meta))
    assert mpe.read_geometry(p).sensor_size == pytest.approx((1e-6, 0.5e-6, 0.2e-6))


@pytest.mark.parametrize(("text", "match"), [
    ('{"Scan height Hz": 2e-06,\n "Scan area x-dimension Sx": }', r"m\.json, line 2, column 30"),
    ('{"Scan height Hz": 2e-06}', "lacks key"),
    ('{"Scan height Hz": -1, "Scan area x-dimension Sx": 1, "Scan area y-dimension Sy": 1, '
     '"Scan x-step Sdx": 1, "Scan y-step Sdy": 1}', "'Scan height Hz' is -1"),
    ('{"Scan height Hz": 1, "Scan area x-dimension Sx": 1, "Scan area y-dimension Sy": 1, '
     '"Scan x-step Sdx": 1, "Scan y-step Sdy": 1, "Sensor dimensions": [1]}',
     "'Sensor dimensions'"),
])
def test_bad_mpe_json_refused(tmp_path, text, match):
    p = tmp_path / "m.json"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        mpe.read_geometry(p)


def test_bad_mpe_npz_refused(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, Bz_array=np.zeros((3, 3)), volumes=np.ones(2))
    with pytest.raises(InputError, match=r"bad\.npz: array 'Bz_array' has shape \(3, 3\)"):
        mpe.read_scan(JSON, p)
    with pytest.raises(InputError, match="lacks array 'particle_positions'"):
        mpe.read_particles(p)
    np.savez(p, particle_positions=np.zeros((2, 3)), volumes=np.array([1e-18, 0.0]))
    with pytest.raises(InputError, match="particle 1"):
        mpe.read_particles(p)
    q = tmp_path / "text.npz"
    q.write_text("not a zip")
    with pytest.raises(InputError, match=r"text\.npz: is not an NPZ archive \(expected the "
                       "multipole library's particle file: particle_positions, volumes\\)$"):
        mpe.read_particles(q)


def test_duplicate_mpe_identifiers_refused(tmp_path):
    p = tmp_path / "dup.npz"
    np.savez(p, particle_positions=np.zeros((3, 3)) - 1e-6, volumes=np.full(3, 1e-18),
             identifier=np.array([3.0, 4.0, 3.0]))
    with pytest.raises(InputError, match=r"dup\.npz: array 'identifier' holds 3 more than once "
                       r"\(rows 0 and 2\)"):
        mpe.read_particles(p)
    np.savez(p, particle_positions=np.zeros((2, 3)) - 1e-6, volumes=np.full(2, 1e-18),
             identifier=np.array([7, 5]))
    assert mpe.read_particles(p).labels.tolist() == [7, 5]


def test_bad_particle_numbers_are_printed_plainly(tmp_path):
    p = tmp_path / "vol.npz"
    np.savez(p, particle_positions=np.array([[1e-6, np.nan, -2e-6]]), volumes=np.array([-2e-18]))
    with pytest.raises(InputError, match=r"position \(1e-06, nan, -2e-06\) and volume -2e-18; "
                       ) as err:
        mpe.read_particles(p)
    assert "np." not in str(err.value)
    with pytest.raises(InputError, match=r"grain 1 has volume -2e-18 m³; expected > 0"):
        point_grains(np.zeros((1, 3)), np.array([-2e-18]))
    with pytest.raises(InputError, match=r"grain 1 has position \(0, inf, 0\) m; "):
        point_grains(np.array([[0.0, np.inf, 0.0]]), np.array([1e-18]))


def test_point_list_as_numpy_savetxt_writes_it(tmp_path):
    g = points.read_points(DATA / "grains_points.txt")
    ref = mpe.read_particles(NPZ)
    assert np.array_equal(g.positions, ref.positions) and np.array_equal(g.volume, ref.volume)
    assert g.labels.tolist() == [1, 2, 3]
    out = tmp_path / "p.txt"
    points.write_points(out, g)
    back = points.read_points(out)
    assert np.array_equal(back.positions, g.positions)


@pytest.mark.parametrize(("text", "match"), [
    ("# x y z v label\n1e-6 2e-6 -3e-6 1e-18 1\n1e-6 2e-6 abc 1e-18 2\n",
     r"line 3, column 11: z is 'abc'"),
    ("1e-6 2e-6 -3e-6 0 1\n", r"line 1, column 17: volume is '0'"),
    ("1e-6 2e-6 -3e-6 1e-18 1.5\n", r"line 1, column 23: label is '1.5'"),
    ("1e-6 2e-6 -3e-6 1e-18\n", "line 1: has 4 fields"),
    ("1e-6 2e-6 -3e-6 1e-18 1\n1e-6 2e-6 -4e-6 1e-18 1\n", "line 2: label 1 appears more"),
])
def test_bad_point_lists_refused(tmp_path, text, match):
    p = tmp_path / "pts.txt"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        points.read_points(p)


def test_dragonfly_defaults_and_options():
    path = DATA / "dragonfly_components.csv"
    g = dragonfly.read_dragonfly(path)
    assert g.labels.tolist() == [1, 2, 3, 4]
    assert g.volume[0] == pytest.approx(3.4e-8 * 1e-9)
    assert g.positions[0, :2] == pytest.approx([15e-6, 17e-6])
    radius = np.cbrt(3 * g.volume / (4 * np.pi))
    assert np.max(g.positions[:, 2] + radius) == pytest.approx(0.0, abs=1e-15)
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(min_voxels=5, z_top_mm=0.17))
    assert g.labels.tolist() == [1, 3, 4]
    assert g.positions[:, 2] == pytest.approx(np.array([-18.0, -22.5, -14.5]) * UM)
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_top_mm=0.14, z_down=True))
    assert g.positions[0, 2] == pytest.approx(-12.0 * UM)
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(
        crop=(37 * UM, 50 * UM, 0.0, 1.0)))
    assert g.labels.tolist() == [3]  # 12 µm beyond the window, 13.9 µm deep


def test_dragonfly_default_sample_top_is_warned_of_naming_the_option_and_the_value():
    """Without z_top the top of the highest grain is taken as the surface, which puts every
    grain too shallow by the matrix above it; nothing said so. Now a warning names the option,
    the grain and the CT z used; with z_top given, nothing is warned of."""
    import warnings

    from smm_daq.analysis.grains import GeometryWarning

    path = DATA / "dragonfly_components.csv"
    with pytest.warns(GeometryWarning, match=r"dragonfly_components\.csv: no sample top given "
                      r"\(z_top, --z-top-um\): the top of the highest grain, grain 2 \(line "
                      r"3\), at CT z 161\.391 µm, was taken as the sample surface.*expected "
                      r"--z-top-um"):
        dragonfly.read_dragonfly(path)
    with pytest.warns(GeometryWarning, match=r"grain 3 \(line 4\), at CT z 144\.772 µm"):
        dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_down=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_top_mm=0.17))


def test_bad_dragonfly_files_refused(tmp_path):
    p = tmp_path / "cc.csv"
    head = ("Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
            "Center Of Mass Z (mm)\r\n")
    for cell in ("0,0,2", "0.0,2"):
        p.write_bytes((head + f"1;10;1E-8;0.01;0.02;0.1\r\n2;10;1E-8;{cell};0.02;0.1\r\n")
                      .encode("latin-1"))
        with pytest.raises(InputError, match=r"cc\.csv, line 3, column 11: 'Center Of Mass X"):
            dragonfly.read_dragonfly(p)
    p.write_bytes(head.replace("Voxel count", "Voxels").encode("latin-1"))
    with pytest.raises(InputError, match=r"line 1: lacks column 'Voxel count' \(found 'Label "
                       r"Index', 'Voxels', 'Volume \(mm³\)', "):
        dragonfly.read_dragonfly(p)


DRAGONFLY_HEAD = ("Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);"
                  "Center Of Mass Y (mm);Center Of Mass Z (mm);\r\n")
DRAGONFLY_ROWS = "1;412;3.4E-08;0.015;0.017;0.152;\r\n2;57;4.7E-09;0.03;0.008;0.1555;\r\n"


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8", "utf-8-sig"])
def test_dragonfly_export_in_any_encoding(tmp_path, encoding):
    p = tmp_path / "cc.csv"
    p.write_bytes((DRAGONFLY_HEAD + DRAGONFLY_ROWS).encode(encoding))
    g = dragonfly.read_dragonfly(p)
    assert g.labels.tolist() == [1, 2] and g.volume[1] == pytest.approx(4.7e-18)


# The same two components as DRAGONFLY_ROWS, as an export in µm (Dragonfly writes the unit its
# user chose), ','-separated and saved as Windows "Unicode" text (UTF-16 with its mark).
DRAGONFLY_UM = ("Label Index,Voxel count,Volume (µm³),Center Of Mass X (µm),"
                "Center Of Mass Y (µm),Center Of Mass Z (µm),Aspect Ratio\r\n"
                "1,412,34,15,17,152,1.2\r\n2,57,4.7,30,8,155.5,2.5\r\n")


@pytest.mark.parametrize(("text", "encoding"), [
    (DRAGONFLY_UM, "utf-16"),
    (DRAGONFLY_UM, "utf-8"),
    (DRAGONFLY_UM.replace(",", "\t"), "latin-1"),
    (DRAGONFLY_UM.replace("µm³", "um^3").replace("(µm)", "(um)"), "utf-8"),
    (DRAGONFLY_UM.replace("µm³", "mm3").replace(",34,", ",3.4E-8,").replace(",4.7,", ",4.7E-9,")
     .replace("(µm)", "(nm)").replace(",15,17,152,", ",15000,17000,152000,")
     .replace(",30,8,155.5,", ",30000,8000,155500,"), "utf-8"),
])
def test_dragonfly_exports_in_other_units_separators_and_encodings(tmp_path, text, encoding):
    want_path, p = tmp_path / "mm.csv", tmp_path / "other.csv"
    want_path.write_bytes((DRAGONFLY_HEAD + DRAGONFLY_ROWS).encode("latin-1"))
    p.write_bytes(text.encode(encoding))
    got, want = dragonfly.read_dragonfly(p), dragonfly.read_dragonfly(want_path)
    assert got.labels.tolist() == [1, 2]
    np.testing.assert_allclose(got.volume, want.volume, rtol=1e-12)
    np.testing.assert_allclose(got.positions, want.positions, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize(("header", "words"), [
    ("Center Of Mass X (in)", "column 'Center Of Mass X (in)' has unit 'in'; expected "
                              "'Center Of Mass X (mm)' with a length unit (m, mm, µm, um, nm)"),
    ("Center Of Mass X", "column 'Center Of Mass X' has no unit; expected"),
    ("Volume (µm²)", "column 'Volume (µm²)' has unit 'µm²'; expected 'Volume (mm³)' with a "
                     "volume unit"),
    ("Voxel count (mm)", "column 'Voxel count (mm)' has unit 'mm'; expected 'Voxel count' with "
                         "no unit"),
])
def test_dragonfly_column_without_a_known_unit_refused(tmp_path, header, words):
    p = tmp_path / "cc.csv"
    name = header.split(" (")[0]
    head = DRAGONFLY_HEAD
    for old in ("Center Of Mass X (mm)", "Volume (mm³)", "Voxel count"):
        if old.split(" (")[0] == name:
            head = head.replace(old, header)
    p.write_bytes((head + DRAGONFLY_ROWS).encode("utf-8"))
    with pytest.raises(InputError, match=r"cc\.csv, line 1: ") as no:
        dragonfly.read_dragonfly(p)
    assert words in str(no.value)


@pytest.mark.parametrize("row", ["2,57,4.7,30,8,155,5,2.5\r\n",  # Z a decimal comma
                                 "2,57,4.7,30,8,155.5,2,5\r\n"])  # an unused column's
def test_dragonfly_decimal_comma_in_a_comma_separated_file_refused(tmp_path, row):
    """Split in two by the separator, a decimal comma would shift every later cell one column
    along: Z read from the Aspect Ratio column, or the row read with one cell too many."""
    p = tmp_path / "cc.csv"
    p.write_bytes((DRAGONFLY_UM.rsplit("2,57", 1)[0] + row).encode("utf-8"))
    with pytest.raises(InputError, match=r"cc\.csv, line 3: holds 8 cells where the header "
                       r"names 7 \(a decimal comma"):
        dragonfly.read_dragonfly(p)


@pytest.mark.parametrize(("column", "words"), [
    # the same header twice
    ("Volume (µm³)", "column 104: names column 'Volume' twice: 'Volume (µm³)' at column 25 "
                     "and 'Volume (µm³)'; expected each column read"),
    # one name in two units: which holds the values is not known either
    ("Center Of Mass X (mm)", "column 104: names column 'Center Of Mass X' twice: 'Center Of "
                              "Mass X (µm)' at column 38 and 'Center Of Mass X (mm)'"),
])
def test_dragonfly_column_named_twice_refused(tmp_path, column, words):
    """Two columns of one name that is read: either could hold the values meant, so reading
    one of them silently could read the wrong one."""
    p = tmp_path / "cc.csv"
    p.write_bytes(DRAGONFLY_UM.replace("Aspect Ratio", column).encode("utf-8"))
    with pytest.raises(InputError) as no:
        dragonfly.read_dragonfly(p)
    assert f"cc.csv, line 1, {words}" in str(no.value)


def test_dragonfly_column_not_read_may_be_named_twice(tmp_path):
    p = tmp_path / "cc.csv"
    text = DRAGONFLY_UM.replace("Aspect Ratio", "Aspect Ratio,Aspect Ratio")
    p.write_bytes(text.replace(",1.2\r\n", ",1.2,1\r\n").replace(",2.5\r\n", ",2.5,1\r\n")
                  .encode("utf-8"))
    np.testing.assert_allclose(dragonfly.read_dragonfly(p).positions[:, 0], [15e-6, 30e-6],
                               rtol=1e-12)


def test_dragonfly_bad_cell_named_with_its_unit(tmp_path):
    p = tmp_path / "cc.csv"
    p.write_bytes(DRAGONFLY_UM.replace(",30,8,", ",30,x,").encode("utf-8"))
    with pytest.raises(InputError, match=r"line 3, column 13: 'Center Of Mass Y \(µm\)' is 'x'; "
                       r"expected a number in µm"):
        dragonfly.read_dragonfly(p)


def test_dragonfly_decimal_commas(tmp_path):
    dots, commas = tmp_path / "dots.csv", tmp_path / "commas.csv"
    dots.write_bytes((DRAGONFLY_HEAD + DRAGONFLY_ROWS).encode("latin-1"))
    commas.write_bytes((DRAGONFLY_HEAD + DRAGONFLY_ROWS.replace(".", ",")).encode("latin-1"))
    got, want = dragonfly.read_dragonfly(commas), dragonfly.read_dragonfly(dots)
    assert np.array_equal(got.positions, want.positions)
    assert np.array_equal(got.volume, want.volume)


def test_dragonfly_decimal_commas_read_where_the_file_has_no_decimal_point(tmp_path):
    """A ';'-separated export comes from a decimal-comma locale: '1,234' is 1.234 there."""
    p = tmp_path / "cc.csv"
    p.write_bytes((DRAGONFLY_HEAD + "1;412;3,4E-08;1,234;0,0012;0,152;\r\n"
                   "2;57;4,7E-09;0,03;2;0,1555;\r\n").encode("latin-1"))
    g = dragonfly.read_dragonfly(p)
    np.testing.assert_allclose(g.positions[:, :2] / UM, [[1234.0, 1.2], [30.0, 2000.0]])


@pytest.mark.parametrize(("rows", "cell", "where", "other"), [
    # a thousands separator among decimal points: 1,234 mm would be read as 1.234 mm
    ("1;412;3.4E-08;1,234;0.017;0.152;\r\n2;57;4.7E-09;0.03;0.008;0.1555;\r\n",
     "'Center Of Mass X (mm)' is '1,234'", "line 2, column 15", "'3.4E-08' on line 2"),
    ("1;1,234;3.4E-08;0.015;0.017;0.152;\r\n", "'Voxel count' is '1,234'",
     "line 2, column 3", "'3.4E-08' on line 2"),
    # a decimal point among decimal commas
    ("1;412;3,4E-08;0,015;0,017;0,152;\r\n2;57;4,7E-09;0.03;0,008;0,1555;\r\n",
     "'Center Of Mass X (mm)' is '0.03'", "line 3, column 14", "'3,4E-08' on line 2"),
])
def test_dragonfly_mixed_decimal_marks_refused_by_cell(tmp_path, rows, cell, where, other):
    p = tmp_path / "cc.csv"
    p.write_bytes((DRAGONFLY_HEAD + rows).encode("latin-1"))
    with pytest.raises(InputError) as caught:
        dragonfly.read_dragonfly(p)
    message = str(caught.value)
    assert f"cc.csv, {where}: {cell}" in message
    assert other in message and "expected one decimal mark" in message


def test_dragonfly_centroid_above_the_given_top_refused():
    path = DATA / "dragonfly_components.csv"
    opt = dragonfly.DragonflyOptions(z_top_mm=0.16)
    with pytest.raises(InputError, match=r"dragonfly_components\.csv, line 3: grain 2: its "
                       r"centroid lies 1 µm above the sample top given \(z_top 160 µm\); "
                       r"expected every centroid at or below it: check z_top \(--z-top-um\) .*"
                       r"--z-down"):
        dragonfly.read_dragonfly(path, opt)
    opt = dragonfly.DragonflyOptions(z_top_mm=0.15, z_down=True)
    with pytest.raises(InputError, match=r"csv, line 4: grain 3: its centroid lies 2\.5 µm "):
        dragonfly.read_dragonfly(path, opt)
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_top_mm=0.161))
    assert g.positions[:, 2].max() == 0.0
    crop = (14 * UM, 16 * UM, 0.0, 1.0)  # grain 2, above 0.16 mm, lies 4 µm beyond it
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_top_mm=0.16, crop=crop))
    assert g.labels.tolist() == [1, 3]  # 3: 9 µm beyond the window, 12.5 µm deep


@pytest.mark.parametrize("z_top_mm", [float("nan"), float("inf")])
def test_dragonfly_non_finite_z_top_refused(z_top_mm):
    with pytest.raises(InputError, match=r"^z_top \(--z-top-um\) is (nan|inf) µm; expected a "
                       "finite z"):
        dragonfly.read_dragonfly(DATA / "dragonfly_components.csv",
                                 dragonfly.DragonflyOptions(z_top_mm=z_top_mm))


def grid_map():
    x = np.arange(10) * UM
    y = np.arange(8) * UM
    return MapData(bz=np.zeros((8, 10)), x=x, y=y)


def test_masks_from_array_image_and_shapes(tmp_path):
    m = grid_map()
    arr = np.zeros((8, 10), bool)
    arr[2, 3] = True
    np.save(tmp_path / "m.npy", arr)
    assert np.array_equal(read_mask(tmp_path / "m.npy", m), arr)
    # an image drawn top-down: black in its top-left corner is the map's high-y, low-x corner
    img = np.full((8, 10), 255, np.uint8)
    img[0:2, 0:3] = 0
    Image.fromarray(img).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png", m)
    assert mask.sum() == 6 and mask[7, 0] and mask[6, 2] and not mask[0, 0]
    # at twice the resolution it resamples to the same mask
    Image.fromarray(np.kron(img, np.ones((2, 2), np.uint8))).save(tmp_path / "big.png")
    assert np.array_equal(read_mask(tmp_path / "big.png", m), mask)
    (tmp_path / "s.json").write_text(json.dumps(
        {"rectangles_um": [[0, 1, 0, 1]],
         "polygons_um": [[[4.5, 4.5], [6.5, 4.5], [6.5, 6.5], [4.5, 6.5]]]}))
    shapes = read_mask(tmp_path / "s.json", m)
    assert shapes[0:2, 0:2].all() and shapes[5:7, 5:7].all() and shapes.sum() == 8


def test_bad_masks_refused(tmp_path):
    m = grid_map()
    np.save(tmp_path / "m.npy", np.zeros((3, 3), bool))
    with pytest.raises(InputError, match=r"shape \(3, 3\); expected the map's \(8, 10\)"):
        read_mask(tmp_path / "m.npy", m)
    (tmp_path / "s.json").write_text('{"rectangles_um": [[0, 1, 0]]}')
    with pytest.raises(InputError, match=r"rectangles_um\[0\]"):
        read_mask(tmp_path / "s.json", m)
    (tmp_path / "t.json").write_text('{\n "polygons_um": [[1, 2],\n}')
    with pytest.raises(InputError, match=r"t\.json, line 3, column 1"):
        read_mask(tmp_path / "t.json", m)
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(InputError, match="not a readable image"):
        read_mask(tmp_path / "x.png", m)


@pytest.mark.parametrize("identifier", [np.array(["a", "b"]), np.array([1, 2, 3]),
                                        np.array([1.5, 2.0]), np.array([1.0, np.nan])],
                         ids=["text", "too many", "fraction", "nan"])
def test_an_identifier_that_is_not_one_label_per_particle_is_refused(tmp_path, identifier):
    p = tmp_path / "ids.npz"
    np.savez(p, particle_positions=np.zeros((2, 3)) - 1e-6, volumes=np.full(2, 1e-18),
             identifier=identifier)
    with pytest.raises(InputError, match=r"ids\.npz: array 'identifier' holds \d+ values of "
                                         r"type .*; expected 2 whole numbers, one label per "
                                         "particle"):
        mpe.read_particles(p)


def test_crop_to_scan_keeps_the_grains_just_beyond_the_scan_whose_field_reaches_it(tmp_path):
    """A grain's field spreads sideways about as far as it lies deep: one whose centroid lies
    beyond the sensor window by less than its depth is kept (the MMT tutorial's own micro-CT
    keeps 7 of 99 grains outside its window, one of 6,400 µm³ 1.1 µm beyond it); one farther
    out than it lies deep is dropped, also past a corner (the distance to the window)."""
    path = tmp_path / "cc.csv"
    rows = [(1, 20, 20, 140),   # under the scan
            (2, -3, 20, 140),   # 3 µm beyond x0, 10 µm deep: kept
            (3, -30, 20, 140),  # 30 µm beyond, 10 µm deep: dropped
            (4, 55.4, 47.2, 140),  # 5.4, 7.2 past the corner: 9 µm away, 10 µm deep: kept
            (5, 55.4, 47.2, 141.5),  # the same, 8.5 µm deep: dropped
            (6, 20, 45, 149)]   # 5 µm beyond y1, 1 µm deep: dropped
    path.write_text("Label Index;Voxel count;Volume (µm³);Center Of Mass X (µm);"
                    "Center Of Mass Y (µm);Center Of Mass Z (µm)\n"
                    + "".join(f"{n};100;1;{x};{y};{z}\n" for n, x, y, z in rows),
                    encoding="utf-8")
    window = (0.0, 50 * UM, 0.0, 40 * UM)
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_top_mm=0.15, crop=window))
    assert g.labels.tolist() == [1, 2, 4]
    with pytest.raises(InputError, match=r"cc\.csv: no grain lies under the scan window x "
                                         r"100\.\.110 µm, y 0\.\.40 µm, nor within its distance "
                                         r"below the sensor \(0 µm above the top\)"):
        dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(
            z_top_mm=0.15, crop=(100 * UM, 110 * UM, 0.0, 40 * UM)))


def test_crop_reach_adds_the_sensor_height(tmp_path):
    """A grain's field spreads sideways as far as it lies below the sensor, its depth plus
    the scan's height: at 100 µm above the top, a grain 1 µm deep and 20 µm beyond the edge
    is seen by the edge sensors near its strongest, and was dropped (its depth alone the
    reach); one farther out than depth plus height still is."""
    path = tmp_path / "cc.csv"
    rows = [(1, 20, 20, 140),   # under the scan
            (2, 70, 20, 149),   # 20 µm beyond x1, 1 µm deep: within 101 µm, kept
            (3, 200, 20, 149),  # 150 µm beyond, 1 µm deep: dropped
            (4, 20, 140, 130)]  # 100 µm beyond y1, 20 µm deep: kept
    path.write_text("Label Index;Voxel count;Volume (µm³);Center Of Mass X (µm);"
                    "Center Of Mass Y (µm);Center Of Mass Z (µm)\n"
                    + "".join(f"{n};100;1;{x};{y};{z}\n" for n, x, y, z in rows),
                    encoding="utf-8")
    window = (0.0, 50 * UM, 0.0, 40 * UM)
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(
        z_top_mm=0.15, crop=window, crop_height=100 * UM))
    assert g.labels.tolist() == [1, 2, 4]
    g = dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(z_top_mm=0.15, crop=window))
    assert g.labels.tolist() == [1]  # in contact: the depth alone
    m = MapData(bz=np.zeros((2, 2)), x=np.array([0.0, 50 * UM]), y=np.array([0.0, 40 * UM]),
                height=100 * UM, name="a")
    assert dragonfly.scan_crop([m, m.with_bz(m.bz, name="b")])["crop_height"] == 100 * UM
    with pytest.raises(InputError, match=r"crop_height is -1 µm; expected the sensor's height"):
        dragonfly.read_dragonfly(path, dragonfly.DragonflyOptions(
            z_top_mm=0.15, crop=window, crop_height=-1 * UM))
