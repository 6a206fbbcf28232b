"""Fuzzing the data files users bring, from outside, for what the earlier fuzz rounds left out:
field-wise mutations of multi-grain files of every `--grain-format` run with the point-grain
and registration options, masks of every kind on scans with unmeasured pixels, and root
attributes of a session file other programs may have set. Each case below is one bug the
broader seeded campaign found:

* a root attribute of NaN (another program's, or a damaged `file_identity`): every refused
  write put it back, NaN being unequal to itself, and so changed the file's bytes;
* a Dragonfly centroid of 1e308 mm with no sample top given: the top taken from it overflowed
  (numpy's warning, a traceback under -W error) instead of the cell being named;
* a mask polygon with vertices near the float limit (±1e300 µm): the even-odd rule's products
  overflowed (numpy's warning; with it silenced, every crossing infinite and no pixel inside);
* a map axis of infinities: listing the entries (info, and every command reading the file)
  took the step as inf - inf, numpy's "invalid value" warning before the refusal;
* a sensor (an entry's, or --sensor-size-um) of sides or a thickness of 1e-306 m: the point
  models divided by its area, 0 (a ZeroDivisionError), or infinite at 1e-160 m (SciPy's
  "A has a NaN entry").

Each must be refused (or read) with exit 2 (or 0), one message naming the file and what was
expected, no traceback, the files given unchanged.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.analysis.masks import polygon_mask
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

N = 12
X = np.arange(N) * 10e-6
BZ = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)


def _map(name: str) -> MapData:
    return MapData(BZ, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                   applied_field=np.zeros(3), name=name, title=name)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files5") / "base.h5"
    write_map_entry(path, _map("ok"), kind="scan")
    return path


def _own(base: Path, tmp: Path) -> Path:
    path = tmp / "s.h5"
    shutil.copy(base, path)
    return path


def _check(cases: list[Case]) -> None:
    counts, failures = run_all(cases)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


@pytest.mark.parametrize("attr", ["file_identity", "sample_temperature_K"])
@pytest.mark.parametrize("value", [np.nan, np.array([1.0, np.nan]), complex(np.nan, 0.0)],
                         ids=["NaN", "array with NaN", "complex NaN"])
def test_a_refused_write_leaves_a_root_attribute_of_nan_as_it_was(
        base: Path, tmp_path: Path, attr: str, value: object) -> None:
    path = _own(base, tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs[attr] = value
    argv = ["background", str(path), "--entry", "ok", "--name", "new", "--border-um", "20"]
    _check([Case("root attribute", "first write", argv, may_pass=True)])
    # the second is refused (the entry is there) after the write began: put back as it was
    _check([Case("root attribute", f"{attr} = {value!r}", argv, [path], [],
                 [path.name, "'new'"])])


def test_a_dragonfly_centroid_at_the_float_limit_is_named_without_a_top(
        base: Path, tmp_path: Path) -> None:
    """With no --z-top-um the top is the highest grain's: 1e308 mm overflowed in µm."""
    path = tmp_path / "components.csv"
    path.write_text("Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);"
                    "Center Of Mass Y (mm);Center Of Mass Z (mm)\n"
                    "1;100;1e-07;0.055;0.055;-0.01\n2;40;5e-08;0.03;0.07;1e308\n",
                    encoding="utf-8")
    session, out = _own(base, tmp_path), tmp_path / "r.csv"
    argv = ["mmt", "invert", str(session), "--entry", "ok", "--grains", str(path),
            "--grain-format", "dragonfly", "--model", "dipole", "--out", str(out)]
    _check([Case("dragonfly", "z 1e308 mm, no top", argv, [path, session], [out],
                 [path.name, "line 3, column", "Center Of Mass Z"])])


HUGE = 1e300  # µm


def test_a_mask_polygon_near_the_float_limit_is_read_without_overflow(
        base: Path, tmp_path: Path) -> None:
    mask = tmp_path / "mask.json"
    mask.write_text(json.dumps({"polygons_um": [[[-HUGE, -HUGE], [HUGE, -HUGE], [0, HUGE]]]}))
    grains = tmp_path / "grains.txt"
    grains.write_text("55e-6 55e-6 -10e-6 1e-16 1\n")
    session, out = _own(base, tmp_path), tmp_path / "r.csv"
    argv = ["mmt", "invert", str(session), "--entry", "ok", "--grains", str(grains),
            "--grain-format", "points", "--model", "dipole", "--mask", str(mask),
            "--out", str(out)]
    _check([Case("mask", "triangle of ±1e300 µm over the map", argv, [mask, session], [out],
                 [mask.name, "every pixel"])])


def test_a_polygon_near_the_float_limit_masks_what_it_covers() -> None:
    """A triangle of corners ±1e294 m around the map covers every pixel (its products
    overflowed to infinities, which put every pixel outside)."""
    far = HUGE * 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = polygon_mask(_map("ok"), np.array([[-far, -far], [far, -far], [0.0, far]]))
    assert got.all()


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("values", [np.full(N, -np.inf), np.where(X > 0, np.inf, X)],
                         ids=["all -inf", "inf after 0"])
def test_an_axis_of_infinities_is_named_by_every_listing_without_numpys_warning(
        base: Path, tmp_path: Path, axis: str, values: np.ndarray) -> None:
    """Listing the entries took the step from the first two positions: inf - inf warned."""
    path = _own(base, tmp_path)
    with h5py.File(path, "a") as f:
        del f[f"ok/data/{axis}"]
        f[f"ok/data/{axis}"] = values
    out = tmp_path / "new.csv"
    _check([Case("axis", f"{axis} {label}", argv, [path], [out],
                 [path.name, "entry 'ok'", f"axis '{axis}'"])
            for label, argv in (
                ("info", ["info", str(path)]),
                ("export", ["export", str(path), "--entry", "ok", "--csv", str(out)]),
                ("background", ["background", str(path), "--entry", "ok", "--name", "new",
                                "--border-um", "20"]))])


def _points_invert(session: Path, tmp: Path, *extra: str) -> tuple[list[str], Path, Path]:
    grains, out = tmp / "grains.txt", tmp / "r.csv"
    grains.write_text("55e-6 55e-6 -10e-6 1e-16 1\n")
    return (["mmt", "invert", str(session), "--entry", "ok", "--grains", str(grains),
             "--grain-format", "points", "--model", "dipole", "--out", str(out), *extra],
            grains, out)


@pytest.mark.parametrize(("dataset", "value"), [
    ("size", np.array([1e-306, 1e-306])), ("size", np.array([1e-160, 1e-160])),
    ("thickness", np.float64(1e-306))])
def test_an_entrys_sensor_too_small_to_have_an_area_is_refused_naming_the_entry(
        base: Path, tmp_path: Path, dataset: str, value: np.ndarray) -> None:
    """The point models divide by the sensor's area (or volume): 0 for sides of 1e-306 m (a
    ZeroDivisionError), infinite fields for 1e-160 m."""
    session = _own(base, tmp_path)
    with h5py.File(session, "a") as f:
        path = f"ok/instrument/sensor/{dataset}"
        if path in f:
            del f[path]
        if dataset == "thickness":
            del f["ok/instrument/sensor/size"]
            f["ok/instrument/sensor/size"] = np.array([1e-6, 1e-6])
        f[path] = value
        f[path].attrs["units"] = "m"
    argv, grains, out = _points_invert(session, tmp_path)
    _check([Case("sensor", f"{dataset} {value}", argv, [session, grains], [out],
                 [session.name, "entry 'ok'", f"sensor {dataset}"])])


def test_a_sensor_size_option_too_small_to_have_an_area_is_refused(
        base: Path, tmp_path: Path) -> None:
    session = _own(base, tmp_path)
    argv, grains, out = _points_invert(session, tmp_path, "--sensor-size-um", "1e-300,1e-300")
    _check([Case("sensor", "--sensor-size-um 1e-300", argv, [session, grains], [out],
                 ["--sensor-size-um", "1e-300"])])


# -- the seeded campaign, a few examples of each grain format -----------------------------------

ODD = ["nan", "inf", "-inf", "1e308", "-1e308", "1e300", "1e-300", "0", "-0", "-1", "1e-320",
       "abc", "", "0x10", "1_000", "+1", ".5", "5.", "1e", "Infinity", "9" * 400, "\x00", "１"]
FORMATS = {  # name: (suffix, header, rows, separator, options)
    "cuboids": (".csv", "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n",
                [[1, 55, 55, -10, 8, 8, 8], [2, 30, 70, -6, 4, 4, 4], [2, 34, 70, -6, 4, 4, 4]],
                ",", []),
    "mmt": (".txt", "", [[55, 55, 10, 4, 4, 4, 1], [30, 70, 6, 2, 2, 2, 2]], " ", []),
    "points": (".txt", "# x y z volume label\n",
               [[55e-6, 55e-6, -10e-6, 1e-16, 1], [30e-6, 70e-6, -6e-6, 5e-17, 2]], " ",
               ["--model", "dipole"]),
    "dragonfly": (".csv", "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);"
                  "Center Of Mass Y (mm);Center Of Mass Z (mm)\n",
                  [[1, 100, 1e-7, 0.055, 0.055, -0.01], [2, 40, 5e-8, 0.03, 0.07, -0.006]],
                  ";", ["--model", "dipole"]),
}
OPTIONS = [[], ["--grains-shift-um", "1,2,-3"], ["--grains-rotation-deg", "90"],
           ["--sigma-nT", "1"]]
POINT_OPTIONS = [["--crop-to-scan"], ["--grains-rotation-deg", "33"]]  # and Dragonfly's:
DRAGONFLY_OPTIONS = [["--z-top-um", "0"], ["--z-top-um", "5", "--z-down"], ["--min-voxels", "50"]]
EXAMPLES = 6  # per format: about 5 s in all


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_field_mutations_of_a_grain_file_are_read_or_refused_cleanly(
        base: Path, tmp_path: Path, fmt: str) -> None:
    suffix, header, rows, sep, model = FORMATS[fmt]
    rng = np.random.default_rng(list(FORMATS).index(fmt) + 20261207)
    session, out = _own(base, tmp_path), tmp_path / "r.csv"
    cases = []
    for i in range(EXAMPLES):
        cells = [[str(c) for c in row] for row in rows]
        for _ in range(int(rng.integers(1, 3))):
            r, c = int(rng.integers(len(cells))), int(rng.integers(len(cells[0])))
            cells[r][c] = str(rng.choice(ODD))
        path = tmp_path / f"grains{i}{suffix}"
        path.write_bytes((header + "".join(sep.join(r) + "\n" for r in cells)).encode())
        choices = OPTIONS + (POINT_OPTIONS if fmt in ("points", "dragonfly") else []) + (
            DRAGONFLY_OPTIONS if fmt == "dragonfly" else [])
        options = choices[int(rng.integers(len(choices)))]
        argv = ["mmt", "invert", str(session), "--entry", "ok", "--grains", str(path),
                "--grain-format", fmt, "--out", str(out), "--overwrite", *model, *options]
        cases.append(Case(fmt, f"{cells}", argv, [path], [], may_pass=True))
    _check(cases)


@pytest.mark.parametrize("suffix", [".json", ".npy"])
def test_a_mask_over_every_measured_pixel_is_refused_naming_it(
        base: Path, tmp_path: Path, suffix: str) -> None:
    """A scan measured on its right half only, masked there: the fit's "no usable pixel"
    named the scan, not the mask file that left it none."""
    session = _own(base, tmp_path)
    with h5py.File(session, "a") as f:
        bz = f["ok/data/Bz"][()]
        bz[:, : N // 2] = np.nan
        f["ok/data/Bz"][...] = bz
    mask = tmp_path / f"mask{suffix}"
    if suffix == ".json":
        mask.write_text(json.dumps({"rectangles_um": [[55, 200, -10, 200]]}))
    else:
        np.save(mask, np.arange(N)[None, :].repeat(N, 0) >= N // 2)
    argv, grains, out = _points_invert(session, tmp_path, "--mask", str(mask))
    _check([Case("mask", f"{suffix} over the measured half", argv, [session, grains, mask],
                 [out], [mask.name, "every measured pixel"])])
