"""The map-analysis commands, run through `smm-daq`'s entry point on a session file."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from test_registration import dipoles_bz, random_sources
from test_shell_words_dash import bash_words
from test_susceptibility import grains, induced_map

from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

STEP = 2e-6


@pytest.fixture
def session(tmp_path):
    """A file with a zero-field scan and an in-field scan of a sample moved by SHIFT."""
    rng = np.random.default_rng(12)
    x = np.arange(60) * STEP
    y = np.arange(50) * STEP
    px, py = np.meshgrid(x, y)
    sources = random_sources(rng, 15, np.array([x[-1], y[-1]]))
    shift = (1.3e-6, -0.7e-6)
    moved = [(s[0] + shift[0], s[1] + shift[1], *s[2:]) for s in sources]
    kw = dict(height=10e-6, sensor_size=(0.0, 0.0))
    path = tmp_path / "s.h5"
    noise = rng.normal(size=(2, *px.shape)) * 2e-8
    write_map_entry(path, MapData(dipoles_bz(px, py, sources) + noise[0], x, y,
                                  applied_field=np.zeros(3), name="remanent", **kw), kind="scan")
    write_map_entry(path, MapData(dipoles_bz(px, py, moved) + 1e-6 + noise[1], x, y,
                                  applied_field=np.array([0, 40e-6, 1e-6]), name="in_field", **kw),
                    kind="scan")
    return path, shift


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_subtract_registers_and_records_the_shift(session, capsys):
    path, shift = session
    code, out, _ = run(capsys, "subtract", path, "--in-field", "in_field", "--remanent",
                       "remanent", "--name", "induced")
    assert code == 0 and "registered: shift" in out
    m = read_map(path, "induced")
    assert m.sources == ("in_field", "remanent")
    np.testing.assert_array_equal(m.applied_field, [0, 40e-6, 1e-6])
    with h5py.File(path) as f:
        reg = f["induced/registration"]
        assert reg.attrs["NX_class"] == "NXprocess" and reg["registered"][()] == 1
        np.testing.assert_allclose(reg["shift"][()], shift, atol=0.02 * STEP)
        assert reg["shift"].attrs["units"] == "m" and reg["shift_errors"].attrs["units"] == "m"
        assert np.all(reg["shift_errors"][()] > 0)
    code, _, _ = run(capsys, "subtract", path, "--in-field", "in_field", "--remanent",
                     "remanent", "--name", "raw", "--no-register")
    assert code == 0
    with h5py.File(path) as f:
        assert f["raw/registration/registered"][()] == 0
    # the registered difference is the leakage alone, the raw one is not
    assert np.nanstd(m.bz) < 1e-7 < np.nanstd(read_map(path, "raw").bz)


def test_entries_that_do_not_match_exit_2_with_a_message(session, capsys):
    path, _ = session
    small = read_map(path, "remanent")
    write_map_entry(path, MapData(small.bz[:-1], small.x, small.y[:-1], name="small"), kind="scan")
    code, _, err = run(capsys, "subtract", path, "--in-field", "in_field", "--remanent", "small",
                       "--name", "x")
    assert code == 2 and "same grid" in err and "Traceback" not in err
    rem = read_map(path, "remanent")
    write_map_entry(path, rem.with_bz(rem.bz, name="chi"), kind="susceptibility")
    for in_field, remanent, words in (
            ("remanent", "remanent", "are both 'remanent'"),
            ("remanent", "in_field", "'remanent' was scanned in zero field and the remanent "
                                     "entry 'in_field' in (0, 40, 1) µT"),
            ("chi", "remanent", "entry 'chi' is a susceptibility result")):
        code, _, err = run(capsys, "subtract", path, "--in-field", in_field, "--remanent",
                           remanent, "--name", "x")
        assert code == 2 and words in err, err
    assert "x" not in {e.name for e in list_entries(path)}
    code, _, err = run(capsys, "susceptibility", path, "--entry", "small", "--name", "chi",
                       "--thickness-um", "30")
    assert code == 2 and "no applied field" in err
    code, _, err = run(capsys, "background", path, "--entry", "nope", "--name", "b",
                       "--border-um", "10")
    assert code == 2 and "no entry 'nope'" in err
    code, _, err = run(capsys, "background", path, "--entry", "remanent", "--name", "b")
    assert code == 2 and "no background given" in err
    code, _, err = run(capsys, "background", path, "--entry", "remanent", "--name", "remanent",
                       "--border-um", "10")
    assert code == 2 and "already exists" in err


def test_background_level_noise_crop_and_export(session, capsys, tmp_path):
    path, _ = session
    code, out, _ = run(capsys, "background", path, "--entry", "in_field", "--name", "nofield",
                       "--model", "field")
    assert code == 0 and "1000 nT" in out
    np.testing.assert_allclose(read_map(path, "nofield").bz,
                               read_map(path, "in_field").bz - 1e-6)
    code, _, _ = run(capsys, "background", path, "--entry", "in_field", "--name", "plane",
                     "--model", "plane", "--background-rect", "0,20,0,98",
                     "--sample-polygon", "30,10;110,10;110,90;30,90")
    assert code == 0
    code, out, _ = run(capsys, "level", path, "--entry", "in_field", "--name", "lev",
                       "--border-um", "6")
    assert code == 0 and "levelled 50 lines" in out
    same = read_map(path, "in_field")
    write_map_entry(path, same.with_bz(same.bz, name="again"), kind="scan")
    code, out, err = run(capsys, "noise", path, "--entry", "in_field", "--repeat", "again")
    assert code == 2 and "identical at every pixel compared" in err and "noise:" not in out
    code, _, err = run(capsys, "noise", path, "--entry", "in_field", "--repeat", "in_field")
    assert code == 2 and "--repeat is entry 'in_field' itself" in err
    code, _, _ = run(capsys, "crop", path, "--entry", "in_field", "--name", "part",
                     "--x-um", "10,30", "--y-um", "0,9")
    assert code == 0 and read_map(path, "part").shape == (5, 11)
    code, _, _ = run(capsys, "export", path, "--entry", "part", "--csv", tmp_path / "p.csv",
                     "--png", tmp_path / "p.png")
    assert code == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 55
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run(capsys, "export", path, "--entry", "part")
    assert code == 2 and "nothing to export" in err


def test_field_background_fitted_on_a_mask_says_it_removed_an_offset(session, capsys):
    """With background pixels, --model field removes the offset fitted there: on a zero-field
    scan it said "removed the applied field's reading: ... nT" of a field never applied."""
    path, _ = session
    code, out, _ = run(capsys, "background", path, "--entry", "remanent", "--name", "off",
                       "--model", "field", "--border-um", "6")
    assert code == 0 and "removed the applied field's" not in out
    assert "removed an offset of " in out and " background pixels: the applied field's " \
        "reading with any other constant offset (the scan was at zero applied field, so " \
        "none of it is the field's)" in out, out
    code, out, _ = run(capsys, "background", path, "--entry", "in_field", "--name", "off2",
                       "--model", "field", "--border-um", "6")
    assert code == 0 and "(the applied field's Bz is 1000 nT)" in out, out


def test_a_field_of_tens_of_microtesla_is_said_in_full_nT(session, capsys):
    """A background of 20 µT was said "2e+04 nT", one digit where four are meant."""
    path, _ = session
    m = read_map(path, "in_field")
    write_map_entry(path, m.with_bz(m.bz + 20e-6, name="z20", applied_field=np.array(
        [0.0, 0.0, 20e-6])), kind="scan")
    code, out, _ = run(capsys, "background", path, "--entry", "z20", "--name", "f",
                       "--model", "field")
    assert code == 0 and "from the entry's field vector: 20000 nT" in out, out
    code, out, _ = run(capsys, "background", path, "--entry", "z20", "--name", "o",
                       "--model", "offset", "--border-um", "6")
    assert code == 0 and "offset 2" in out and "e+0" not in out, out


def test_a_field_just_under_ten_microtesla_is_said_in_full_nT(session, capsys):
    """9999.5 to 10⁴ nT round to 10⁴ at four digits: the applied field's 9999.8 nT was said
    "1e+04 nT", the one digit the full figures from 10⁴ nT up were to end."""
    path, _ = session
    m = read_map(path, "in_field")
    write_map_entry(path, m.with_bz(m.bz, name="z10", applied_field=np.array(
        [0.0, 0.0, 9999.8e-9])), kind="scan")
    code, out, _ = run(capsys, "background", path, "--entry", "z10", "--name", "f",
                       "--model", "field")
    assert code == 0 and "from the entry's field vector: 10000 nT" in out, out


def test_the_background_selected_is_recorded_as_data(session, capsys):
    """The background pixels chosen on the command line were kept only inside the recorded
    command: each entry fitted on a background now holds the pixels used and the options
    that chose them (in m), which refit its map and level its lines again exactly."""
    from smm_daq.analysis.background import remove_background
    from smm_daq.analysis.levelling import level_lines

    path, _ = session
    polygons = ("30,10;110,10;110,90;30,90", "2,2;8,2;8,8")
    assert run(capsys, "background", path, "--entry", "in_field", "--name", "plane",
               "--model", "plane", "--background-rect", "0,20,0,98", "--background-rect",
               "112,118,0,98", *(f"--sample-polygon={p}" for p in polygons))[0] == 0
    assert run(capsys, "level", path, "--entry", "in_field", "--name", "lev",
               "--border-um", "6")[0] == 0
    with h5py.File(path, "r") as f:
        plane, lev = f["plane/process/parameters"], f["lev/process/parameters"]
        used = {name: g["background_pixels"][()].astype(bool) for name, g in
                (("plane", plane), ("lev", lev))}
        assert plane["background_rectangles"].attrs["units"] == "m"
        np.testing.assert_allclose(plane["background_rectangles"][()],
                                   [[0, 20e-6, 0, 98e-6], [112e-6, 118e-6, 0, 98e-6]])
        outlines = plane["sample_polygons"][()]
        np.testing.assert_allclose(outlines[:4], [[30e-6, 10e-6], [110e-6, 10e-6],
                                                  [110e-6, 90e-6], [30e-6, 90e-6]])
        assert np.isnan(outlines[4]).all() and outlines.shape == (8, 2)
        assert "background_border" not in plane and lev["background_border"][()] == 6e-6
    scan = read_map(path, "in_field")
    assert 0 < used["plane"].sum() < used["plane"].size
    np.testing.assert_array_equal(remove_background(scan, used["plane"], model="plane").map.bz,
                                  read_map(path, "plane").bz)
    np.testing.assert_array_equal(level_lines(scan, used["lev"], order=0).map.bz,
                                  read_map(path, "lev").bz)


def test_a_command_naming_a_file_in_no_utf8_is_recorded_escaped(session) -> None:
    """A path typed in a Latin-1 terminal (its byte 0xe9 no UTF-8: a lone surrogate to
    Python) made the recorded command a traceback as it was stored (h5py cannot encode it):
    it is stored with the byte escaped in bash's $'…', which bash, the command pasted, gives
    back as the byte (escaped in single quotes, it named another file)."""
    from smm_daq.cli.args import given_words, invoked_command
    from smm_daq.storage.strings import storable

    path, _ = session
    typed = os.fsdecode(b"/data/caf\xe9.h5")
    with given_words(["level", typed, "--entry", "in_field"]):
        command = invoked_command()
    m = read_map(path, "in_field")
    write_map_entry(path, m.with_bz(m.bz, name="made"), kind="levelled",
                    parameters={"command": command})
    with h5py.File(path, "r") as f:
        recorded = f["made/process/parameters/command"].asstr()[()]
    assert recorded == "smm-daq level $'/data/caf\\xe9.h5' --entry in_field"
    assert bash_words(recorded) == [b"level", b"/data/caf\xe9.h5", b"--entry", b"in_field"]
    assert storable("a\ud800b") == "a\\ud800b" and storable("χ µm") == "χ µm"


def _layer_file(tmp_path):
    """A session file holding the induced map of a thin layer of three grains: (path, map, χ)."""
    rng = np.random.default_rng(3)
    chi, _ = grains(rng, 40, count=3)
    m = induced_map(chi, np.array([0.0, 50e-6, 10e-6]), height=20e-6, thickness=20e-6,
                    size=(0.0, 0.0), noise=1e-7, rng=rng)
    path = tmp_path / "layer.h5"
    write_map_entry(path, m, kind="induced")
    return path, m, chi


def test_susceptibility_and_magnetization_entries(tmp_path, capsys):
    path, _, chi = _layer_file(tmp_path)
    code, out, err = run(capsys, "susceptibility", path, "--entry", "induced", "--name", "chi",
                         "--thickness-um", "20", "--noise-nT", "100")
    assert code == 0 and "λ by discrepancy" in out and "warning" not in err
    with h5py.File(path) as f:
        got = f["chi/chi/chi"][()]
        assert np.sqrt(np.mean((got - chi) ** 2)) < 0.1 * chi.max()
        assert f["chi/chi/errors"].shape == (40, 40)
        assert f["chi"].attrs["kind"] == "susceptibility"
        # ℓ left to its default (the sensor height) was recorded nowhere: resolved and kept
        ell = f["chi/process/parameters/correlation_length"]
        assert ell[()] == pytest.approx(20e-6) and ell.attrs["units"] == "m"
        # its data/Bz, the model's field, was labelled "Bz (T)" in silx and NeXpy
        assert f["chi/data/Bz"].attrs["long_name"] == "Bz of the fitted layer's model (T)"
    for dataset, column in (("chi/chi", "chi_SI"), ("chi/errors", "chi_sd_SI"),
                            ("results/chi_SI", "chi_SI")):  # the last: an earlier version's name
        code, _, _ = run(capsys, "export", path, "--entry", "chi", "--dataset", dataset,
                         "--csv", tmp_path / "chi.csv")
        assert code == 0
        assert (tmp_path / "chi.csv").read_text().splitlines()[0] == f"x_um,y_um,{column}"
        (tmp_path / "chi.csv").unlink()
    for dataset, words in (("chi/Chi", "--dataset is 'chi/Chi', which the entry does not hold"),
                           ("/induced/data/Bz", "a path from the file's root; expected a "
                                                "map the entry holds: Bz, chi/chi (the default)")):
        code, _, err = run(capsys, "export", path, "--entry", "chi", "--dataset", dataset,
                           "--csv", tmp_path / "chi.csv")
        assert code == 2 and words in err, err
        assert not (tmp_path / "chi.csv").exists()
    code, _, _ = run(capsys, "magnetization", path, "--entry", "induced", "--name", "mag",
                     "--thickness-um", "20", "--direction", "0,5,1", "--noise-nT", "100",
                     "--correlation-length-um", "7")
    assert code == 0
    with h5py.File(path) as f:
        assert f["mag/process/parameters/correlation_length"][()] == pytest.approx(7e-6)
        assert f["mag/magnetization/M"].attrs["units"] == "A/m"
        assert f["mag/magnetization/errors"].attrs["units"] == "A/m"
        assert f["mag"].attrs["default"] == "magnetization"
    code, _, err = run(capsys, "magnetization", path, "--entry", "induced", "--name", "mag2",
                       "--thickness-um", "20", "--direction", "0,0,0")
    assert code == 2 and "--direction is zero" in err


def test_susceptibility_of_a_field_series_is_their_slope(tmp_path, capsys):
    """Induced maps at +50 and −25 µT along one axis give one χ, the entry naming them all;
    a map off that axis is refused, nothing written."""
    rng = np.random.default_rng(8)
    chi, _ = grains(rng, 24, count=2)
    path = tmp_path / "series.h5"
    field = np.array([0.0, 50e-6, 10e-6])
    m, other = (induced_map(chi, b, height=20e-6, thickness=20e-6, size=(0.0, 0.0), noise=1e-7,
                            rng=rng) for b in (field, -0.5 * field))
    write_map_entry(path, m, kind="induced")
    write_map_entry(path, other.with_bz(other.bz, name="induced_minus"), kind="induced")
    code, _, err = run(capsys, "susceptibility", path, "--entry", "induced", "--entry",
                         "induced_minus", "--name", "chi", "--thickness-um", "20")
    assert code == 0 and "warning" not in err, err
    with h5py.File(path) as f:
        got = f["chi/chi/chi"][()]
        assert np.sqrt(np.mean((got - chi) ** 2)) < 0.1 * chi.max()
        assert list(f["chi"].attrs["sources"]) == ["induced", "induced_minus"]
        np.testing.assert_allclose(f["chi/process/parameters/applied_fields"][()],
                                   [m.applied_field, -0.5 * m.applied_field])
        assert "2 induced maps at +50.99, -25.5 µT along" in f["chi/title"][()].decode()
    tilted = other.with_bz(other.bz, name="tilted", applied_field=np.array([0, 0, 30e-6]))
    write_map_entry(path, tilted, kind="induced")
    code, _, err = run(capsys, "susceptibility", path, "--entry", "induced", "--entry",
                       "tilted", "--name", "chi2", "--thickness-um", "20")
    assert code == 2 and "'tilted' was taken in (0, 0, 30) µT, off the axis of" in err
    assert "chi2" not in list_entries(path)


def test_an_export_of_a_map_the_entry_lacks_names_the_maps_it_holds(tmp_path, capsys):
    """A magnetization entry's map is magnetization/M: a user guessing from the help's chi/chi
    (magnetization/magnetization) is told the entry's own maps, not another kind's example."""
    path, _, _ = _layer_file(tmp_path)
    assert run(capsys, "magnetization", path, "--entry", "induced", "--name", "mag",
               "--thickness-um", "20", "--direction", "0,0,1", "--noise-nT", "100")[0] == 0
    for dataset in ("magnetization/magnetization", "/mag/magnetization/M", "magnetization"):
        code, _, err = run(capsys, "export", path, "--entry", "mag", "--dataset", dataset,
                           "--csv", tmp_path / "m.csv")
        assert code == 2 and not (tmp_path / "m.csv").exists()
        assert ("expected a map the entry holds: Bz, magnetization/M (the default), "
                "magnetization/errors, residual/residual") in err, err
        assert "chi/chi" not in err
    code, _, _ = run(capsys, "export", path, "--entry", "mag", "--dataset", "magnetization/M",
                     "--csv", tmp_path / "m.csv")
    assert code == 0
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "x_um,y_um,M_A_per_m"


def test_a_model_map_is_neither_processed_nor_given_a_noise_floor(tmp_path, capsys):
    """A χ or M entry keeps the fitted layer's field as its data/Bz: a crop or a levelling of it
    made a map of the model with its χ dropped (titled 'chi: cropped'), and `info` gave that
    model field a noise floor (8.8e-06 µT); both now tell it from a measured map."""
    path, m, _ = _layer_file(tmp_path)
    assert run(capsys, "susceptibility", path, "--entry", "induced", "--name", "chi",
               "--thickness-um", "20", "--noise-nT", "100")[0] == 0
    x0, x1 = m.x[[2, -3]] / 1e-6
    for command in (["crop", "--x-um", f"{x0},{x1}", "--y-um", f"{x0},{x1}"],
                    ["level", "--border-um", "10"], ["background", "--border-um", "10"]):
        code, _, err = run(capsys, command[0], path, "--entry", "chi", "--name", "out",
                           *command[1:])
        assert code == 2 and "entry 'chi' is a susceptibility result" in err, err
    assert {e.name for e in list_entries(path)} == {"induced", "chi"}
    code, out, _ = run(capsys, "info", path)
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and "noise floor" in lines["induced"]
    assert "noise floor" not in lines["chi"]


def test_an_induced_map_and_a_scan_are_not_subtracted(session, capsys, tmp_path):
    """An induced map has its remanence removed already: induced − remanent, or in-field −
    induced (also through a crop of the induced map), would hold the remanence again under
    the name of an induced map, so it is refused, in a file and in a recipe; two induced maps
    may still be subtracted (e.g. before and after a treatment)."""
    path, _ = session
    for argv in (("in_field", "remanent", "induced"), ("in_field", "remanent", "induced_2")):
        assert run(capsys, "subtract", path, "--in-field", argv[0], "--remanent", argv[1],
                   "--name", argv[2], "--no-register")[0] == 0
    assert run(capsys, "crop", path, "--entry", "induced", "--name", "cut", "--x-um", "0,200",
               "--y-um", "0,200")[0] == 0
    for in_field, remanent, induced, scan in (("induced", "remanent", "induced", "remanent"),
                                              ("in_field", "induced", "induced", "in_field"),
                                              ("cut", "remanent", "cut", "remanent")):
        code, _, err = run(capsys, "subtract", path, "--in-field", in_field, "--remanent",
                           remanent, "--name", "x", "--no-register")
        assert code == 2 and f"'{induced}' is an induced map" in err and scan in err, err
    assert "x" not in {e.name for e in list_entries(path)}
    code, _, err = run(capsys, "subtract", path, "--in-field", "induced", "--remanent",
                       "induced_2", "--name", "change", "--no-register")
    assert code == 0, err
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\ntitle = "t"\n\n[[step]]\nkind = "subtract"\n'
                      'in_field = "induced"\nremanent = "remanent"\nname = "again"\n'
                      "register = false\n")
    code, _, err = run(capsys, "run", recipe, "--out", path)
    assert code == 2 and "'induced' is an induced map" in err, err
    assert "again" not in {e.name for e in list_entries(path)}


def _layer_scans(tmp_path):
    """A zero-field and an in-field scan of a small thin layer (the in-field one the induced
    map over the remanent's), which the layer inversions fit in few iterations: the session
    fixture's dipoles take them hundreds."""
    rng = np.random.default_rng(5)
    chi, _ = grains(rng, 24, count=2)
    kw = dict(height=20e-6, thickness=20e-6, size=(0.0, 0.0), noise=1e-7, rng=rng)
    remanent = induced_map(chi, np.array([0.0, 0.0, 60e-6]), **kw)
    field = np.array([0, 40e-6, 1e-6])
    in_field = induced_map(chi, field, **kw)
    path = tmp_path / "layer.h5"
    write_map_entry(path, remanent.with_bz(remanent.bz, applied_field=np.zeros(3),
                                           name="remanent"), kind="scan")
    write_map_entry(path, in_field.with_bz(in_field.bz + remanent.bz, name="in_field"),
                    kind="scan")
    return path


def test_susceptibility_of_a_scan_warns_that_it_holds_the_remanence(tmp_path, capsys):
    """And the remanence's magnetization of a scan taken in a field holds the induced one."""
    path = _layer_scans(tmp_path)
    code, _, err = run(capsys, "magnetization", path, "--entry", "in_field", "--name", "m",
                       "--thickness-um", "10", "--direction", "0,0,1")
    assert code == 0 and "'in_field' was taken in a field (0, 40, 1) µT" in err
    code, _, err = run(capsys, "magnetization", path, "--entry", "remanent", "--name", "m0",
                       "--thickness-um", "10", "--direction", "0,0,1")
    assert code == 0 and "taken in a field" not in err
    code, _, err = run(capsys, "susceptibility", path, "--entry", "in_field", "--name", "chi",
                       "--thickness-um", "10")
    assert code == 0 and "'in_field' is not an induced map" in err
    assert run(capsys, "subtract", path, "--in-field", "in_field", "--remanent", "remanent",
               "--name", "induced", "--no-register")[0] == 0
    code, _, err = run(capsys, "susceptibility", path, "--entry", "induced", "--name", "chi2",
                       "--thickness-um", "10")
    assert code == 0 and "not an induced map" not in err


def test_an_entry_others_were_computed_from_is_not_overwritten(session, capsys):
    """Replacing 'induced' (say, unregistered now) under a χ entry computed from it would
    leave χ naming as its source a map it was not computed from: refused, the file as it
    was; the χ entry itself, which nothing was computed from, may still be replaced."""
    path, _ = session
    assert run(capsys, "subtract", path, "--in-field", "in_field", "--remanent", "remanent",
               "--name", "induced")[0] == 0
    assert run(capsys, "crop", path, "--entry", "induced", "--name", "cut", "--x-um", "0,60",
               "--y-um", "0,60")[0] == 0
    assert run(capsys, "level", path, "--entry", "induced", "--name", "lev",
               "--border-um", "10")[0] == 0
    before = path.read_bytes()
    code, _, err = run(capsys, "subtract", path, "--in-field", "in_field", "--remanent",
                       "remanent", "--name", "induced", "--no-register", "--overwrite")
    assert code == 2 and "Traceback" not in err
    assert "entry 'induced' is what 'cut', 'lev' were computed from" in err, err
    assert path.read_bytes() == before
    code, _, err = run(capsys, "crop", path, "--entry", "induced", "--name", "cut",
                       "--x-um", "0,40", "--y-um", "0,40", "--overwrite")
    assert code == 0, err
    assert read_map(path, "cut").shape == (21, 21)


def test_noise_from_a_repeat_in_another_field_or_of_another_kind_is_refused(session, capsys):
    """`noise --repeat` takes the difference of two scans as noise: an in-field scan and a
    zero-field one differ by the induced field, a scan and an induced map by the remanence,
    so either pair would be printed as a noise floor many times too high."""
    path, _ = session
    code, _, err = run(capsys, "noise", path, "--entry", "in_field", "--repeat", "remanent")
    assert code == 2 and "'in_field' was taken in (0, 40, 1) µT and 'remanent' in (0, 0, 0) µT" \
        in err and "expected a repeat in the same field" in err, err
    assert run(capsys, "subtract", path, "--in-field", "in_field", "--remanent", "remanent",
               "--name", "induced", "--no-register")[0] == 0
    code, _, err = run(capsys, "noise", path, "--entry", "induced", "--repeat", "in_field")
    assert code == 2 and "'induced' is an induced map and 'in_field' a scan" in err, err


def test_noise_from_two_maps_of_one_measurement_is_refused(session, capsys):
    """Two maps made from the same scans (an induced map registered and not, a scan and its
    background-removed copy) differ by what the processing did, not by noise: their
    difference, printed as the noise floor, came out near 0 for a user following the
    README (3 nT against 360 nT of noise)."""
    path, _ = session
    for name, extra in (("induced", ()), ("raw", ("--no-register",))):
        assert run(capsys, "subtract", path, "--in-field", "in_field", "--remanent", "remanent",
                   "--name", name, *extra)[0] == 0
    code, out, err = run(capsys, "noise", path, "--entry", "induced", "--repeat", "raw")
    assert code == 2 and not out, out
    assert ("--repeat is 'raw': 'induced' and 'raw' were both made from 'remanent', "
            "'in_field'" in err and "expected a repeat measured on its own" in err), err
    assert run(capsys, "background", path, "--entry", "in_field", "--name", "nofield",
               "--model", "field")[0] == 0
    code, _, err = run(capsys, "noise", path, "--entry", "nofield", "--repeat", "in_field")
    assert code == 2 and "'nofield' and 'in_field' were both made from 'in_field'" in err, err


def test_noise_from_two_induced_maps_sharing_one_scan_says_it_cancels(session, capsys):
    """(A − R) − (B − R) is A − B: R cancels, so the figure would be the noise of one scan,
    not of an induced map, which holds R's too (it was refused as "what was done to them, not
    noise", which says nothing of R or of the scans to give instead)."""
    path, _ = session
    for name, entry in (("in_field_2", "in_field"), ("remanent_2", "remanent")):
        m = read_map(path, entry)  # a repeat, in the same field
        write_map_entry(path, m.with_bz(m.bz + 1e-8, name=name), kind="scan")
    for name, in_field, remanent in (("ia", "in_field", "remanent"),
                                     ("ib", "in_field_2", "remanent"),
                                     ("ic", "in_field", "remanent_2")):
        assert run(capsys, "subtract", path, "--in-field", in_field, "--remanent", remanent,
                   "--name", name, "--no-register")[0] == 0
    assert run(capsys, "crop", path, "--entry", "ib", "--name", "ib_cut", "--x-um", "0,200",
               "--y-um", "0,200")[0] == 0
    before = path.read_bytes()
    for repeat, words in (
            ("ib", "--repeat is 'ib': 'ia' and 'ib' are made from 'in_field' − 'remanent' and "
                   "'in_field_2' − 'remanent', with the remanent scan 'remanent' in common: it "
                   "cancels from their difference, which is 'in_field' − 'in_field_2', the noise "
                   "of one scan, not of an induced map (which holds the noise of both its scans, "
                   "√2 times more); expected induced maps with no scan in common, or the two "
                   "scans themselves (noise --entry in_field --repeat in_field_2)"),
            ("ib_cut", "with the remanent scan 'remanent' in common"),
            ("ic", "with the in-field scan 'in_field' in common: it cancels from their "
                   "difference, which is 'remanent_2' − 'remanent', the noise of one scan")):
        code, out, err = run(capsys, "noise", path, "--entry", "ia", "--repeat", repeat)
        assert code == 2 and not out and "Traceback" not in err, err
        assert words in err, err
    assert path.read_bytes() == before


def test_noise_from_a_repeat_over_too_few_pixels_names_the_scans_and_what_is_expected(
        session, capsys):
    """A background rectangle holding one pixel was refused as "the two scans share fewer
    than 2 measured pixels": neither scan named, nor what was expected."""
    path, _ = session
    m = read_map(path, "in_field")
    write_map_entry(path, m.with_bz(m.bz + 1e-8, name="again"), kind="scan")
    code, out, err = run(capsys, "noise", path, "--entry", "in_field", "--repeat", "again",
                         "--background-rect", "0,1,0,1")
    assert code == 2 and not out and "Traceback" not in err, err
    assert ("'in_field' and 'again' share 1 measured pixel inside the mask; expected at least "
            "2 to take the noise from their difference") in err, err


@pytest.mark.parametrize(("outline", "words"), [
    # a rectangle's corners listed across: a bow tie, two triangles
    ("30,10;110,90;110,10;30,90", "crosses itself: its edge from vertex 0 to 1 crosses the one "
                                  "from 2 to 3"),
    # a spike out of the top side and back along itself
    ("30,10;110,10;110,90;70,90;70,98;70,90;30,90", "runs back along itself: its edge from "
                                                    "vertex 3 to 4 runs along the one from 4 to 5"),
])
def test_a_sample_outline_crossing_or_retracing_itself_is_refused(session, capsys, outline,
                                                                  words):
    """The background would be taken outside two triangles, or beside a line no pixel centre
    is in or out of but by rounding: not the sample's outline the user meant."""
    path, _ = session
    code, _, err = run(capsys, "level", path, "--entry", "in_field", "--name", "lev",
                       "--sample-polygon", outline)
    assert code == 2 and f"--sample-polygon '{outline}' {words}" in err
    assert "lev" not in list_entries(path)


@pytest.mark.parametrize("bad", ["20,a", "1e9,0"])
def test_a_long_outline_is_quoted_cut_in_its_refusal(bad):
    """An outline traced in an image tool (thousands of vertices) is quoted by its start and
    length: whole, it buried the message, and quoting it once for each vertex read took
    seconds at 5,000 vertices and minutes at 20,000."""
    from smm_daq.cli.maps import um_pairs
    from smm_daq.errors import InputError

    angles = np.linspace(0, 2 * np.pi, 5000, endpoint=False)
    outline = "; ".join(f"{50 * np.cos(a):.4f},{50 * np.sin(a):.4f}" for a in angles)
    text = f"{outline}; {bad}"
    with pytest.raises(InputError) as refused:
        um_pairs("--sample-polygon", text)
    message = str(refused.value)
    assert len(message) < 400, message[:400]
    assert message.startswith(("--sample-polygon '50.0000,0.0000; ",
                               "--sample-polygon is '50.0000,0.0000; "))
    assert f"({len(repr(text)):,} characters)" in message


def test_the_background_pixels_recorded_are_those_fitted(tmp_path, capsys):
    """`background_pixels` counted the selection's unmeasured (NaN) pixels, and `level`'s
    those of a line too short of measured ones to fit: it holds the pixels the fit used,
    as many as `results/pixels` says, none of them NaN."""
    x = np.arange(8) * STEP
    bz = np.add.outer(np.arange(6) * 1e-7, np.arange(8) * 1e-8)
    bz[0, :3] = np.nan  # unmeasured pixels in the border
    bz[2, 1:] = np.nan  # a line with one measured pixel: order 1 cannot fit it
    path = tmp_path / "n.h5"
    write_map_entry(path, MapData(bz, x, x[:6], height=10e-6, sensor_size=(0.0, 0.0),
                                  name="scan"), kind="scan")
    border = ("--border-um", "1")  # the outer ring of pixels
    assert run(capsys, "background", path, "--entry", "scan", "--name", "b", *border)[0] == 0
    assert run(capsys, "level", path, "--entry", "scan", "--name", "l", "--order", "1",
               *border)[0] == 0
    ring = np.ones(bz.shape, bool)
    ring[1:-1, 1:-1] = False
    with h5py.File(path, "r") as f:
        fitted = f["b/process/parameters/background_pixels"][()].astype(bool)
        levelled = f["l/process/parameters/background_pixels"][()].astype(bool)
        assert fitted.sum() == f["b/results/pixels"][()]
    np.testing.assert_array_equal(fitted, ring & np.isfinite(bz))
    on_lines_fitted = ring & np.isfinite(bz)
    on_lines_fitted[2] = False
    np.testing.assert_array_equal(levelled, on_lines_fitted)


def test_two_calls_at_once_each_record_their_own_words() -> None:
    """The words `main` was given were one per process: a second call begun while the first
    ran (another thread: the window's, a test's) made the first record the second's."""
    import threading

    from smm_daq.cli.args import given_words, invoked_command

    both_in = threading.Barrier(2)
    recorded: dict[str, str] = {}

    def call(entry: str) -> None:
        with given_words(["level", "s.h5", "--entry", entry]):
            both_in.wait(timeout=30)
            recorded[entry] = invoked_command()
            both_in.wait(timeout=30)  # both read while both are in

    threads = [threading.Thread(target=call, args=(e,)) for e in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert recorded == {e: f"smm-daq level s.h5 --entry {e}" for e in ("a", "b")}


def test_the_noise_command_advised_for_two_scans_stays_on_one_line():
    """A scan named with a newline (or beginning with '-') is written in the advised command as
    bash reads it back: `$'…'` on one line, `--entry=-x`, not split or taken as an option."""
    from smm_daq.cli.maps import _one_side_refusal

    said = _one_side_refusal("ind", "ind2", "remanent", ("in\nfield", "rem"), ("-again", "rem"))
    assert "(noise --entry $'in\\nfield' --repeat=-again) for a scan's noise" in said
