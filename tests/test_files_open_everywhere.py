"""Every file smm-daq writes opens in the tools of the field and plots as what it is.

Real files (the demo session and every analysis product on it, an MMT result, a scan killed
with kill -9 between lines, the same scan resumed, a scan killed during a write, and one file
holding every kind of entry: a recipe's, a resumed scan's, an MMT result's, an image's, a
scan being written) are opened with h5dump of HDF5 1.10 (Debian's hdf5-tools: .ci/run
installs it), plain h5py, silx (`silx.io.open`, its NeXus default resolution) and nexusformat
(`nxload`, its whole `tree`, each entry's own `default`); each entry's default chain is
followed to an NXdata whose signal and axes exist, carry units and fit together (errors
too); nexusformat's validator and punx (offline, its bundled NeXus definitions) report no
error; no dataset carries a unit in its name, and every `units` attribute parses in
UDUNITS-2 (through cf-units). The records of how an entry was made (background selections,
each run's noise base and version, the profile's and recipe's files, the command) read in
h5dump, silx and nexusformat as in h5py, with their units.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from cf_units import Unit
from distributed import LocalCluster

from smm_daq.analysis.optical import fit_affine
from smm_daq.cli.main import main
from smm_daq.storage.h5file import marked_open, text
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry
from smm_daq.storage.optical_entry import write_optical_entry
from smm_daq.storage.scan_entry import read_field_checks
from smm_daq.storage.units import split_units

TESTS = Path(__file__).resolve().parent
# the module's files are made once, by every kind of command: on a fresh clone that compiles
# the cuboid and multipole kernels (numba) in this setup, minutes on a loaded machine
pytestmark = pytest.mark.timeout(900)
H5DUMP = shutil.which("h5dump")

KILLED_SCAN = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from acq_fakes import fake_rig
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.sequencer import Sequencer
    plan = ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6,
                                field=(0.0, 20e-6, 0.0))
    seq = Sequencer(fake_rig(), sys.argv[1], plan)
    def on_event(e):
        if e.kind == "line_done" and e.line == 2:
            os.kill(os.getpid(), 9)  # after the line's write returned: between two writes
    seq.subscribe(on_event)
    seq.run()
    """
)

KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from smm_daq.storage.h5file import writing
    with writing(sys.argv[1], create=False, swmr=True) as f:
        f["k/data/Bz"][3] = np.zeros(f["k/data/Bz"].shape[1])
        f.flush()
        os.kill(os.getpid(), 9)
    """
)


def _plan(name: str = "k"):
    from smm_daq.acquisition.plan import ScanPlan

    return ScanPlan.from_center(name, (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6,
                                field=(0.0, 20e-6, 0.0))


RECIPE = textwrap.dedent(
    """
    [recipe]
    title = "remanent and induced"
    [scan_defaults]
    center_um = [12500.0, 12500.0]
    size_um = [60.0, 40.0]
    step_um = 20.0
    [[step]]
    kind = "zero_field"
    [[step]]
    kind = "scan"
    name = "rem"
    [[step]]
    kind = "set_field"
    field_uT = [0.0, 40.0, 0.0]
    [[step]]
    kind = "scan"
    name = "inf"
    [[step]]
    kind = "subtract"
    in_field = "inf"
    remanent = "rem"
    name = "induced"
    register = false
    """
)

# every kind of entry in one file, as `_every_kind` makes it: name -> kind
EVERY_KIND = {
    "rem": "scan", "inf": "scan", "induced": "induced",  # a recipe's scans and subtraction
    "resumed": "scan",  # cut off, then resumed: a runs group
    "synth": "synthetic", "synth_mmt": "mmt",  # an MMT result
    "thin_section": "optical",  # a registered image
    "live": "scan",  # being written (between two lines)
}


def _every_kind(d: Path) -> Path:
    """One file holding every kind of entry smm-daq writes (`EVERY_KIND`): a recipe's scans
    and subtraction, a resumed scan, an MMT result of the layout written now, a registered
    image, and a scan being written, copied between two of its lines."""
    from acq_fakes import fake_rig

    from smm_daq.acquisition.sequencer import Sequencer

    base, kinds = d / "kinds_base.h5", d / "kinds.h5"
    (d / "recipe.toml").write_text(RECIPE)
    _run("run", d / "recipe.toml", "--out", base, "--yes", "--time-scale", "0")
    cut = Sequencer(fake_rig(), base, _plan("resumed"))
    cut.subscribe(lambda e: cut.abort() if e.kind == "line_done" and e.line == 1 else None)
    assert cut.run() == "aborted"
    assert Sequencer(fake_rig(), base, _plan("resumed"), resume=True).run() == "finished"
    _run("mmt", "synth", "--out", base, "--name", "synth", "--size-um", "20,20",
         "--thickness-um", "10", "--density-per-mm3", "3e5", "--step-um", "2", "--height-um",
         "5", "--noise-nT", "50", "--seed", "4", "--grains-out", d / "kinds_grains.csv",
         "--truth-out", d / "kinds_truth.csv")
    _run("mmt", "invert", base, "--entry", "synth", "--grains", d / "kinds_grains.csv",
         "--out", d / "kinds_result.csv")
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    write_optical_entry(base, "thin_section", image, fit_affine(
        np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]),
        np.array([[0.0, 0.0], [4e-5, 0.0], [0.0, 3e-5]])), image_file="ts.png")
    live = Sequencer(fake_rig(), base, _plan("live"))

    def copy_then_abort(e) -> None:  # the file between two writes of a live scan
        if e.kind == "line_done" and e.line == 1:
            shutil.copy(base, kinds)
            live.abort()

    live.subscribe(copy_then_abort)
    assert live.run() == "aborted"
    return kinds


def _run(*argv: object) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def files(tmp_path_factory, cli_demo) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("files")
    assert cli_demo.code == 0, cli_demo.err
    demo = cli_demo.copy_to(d)
    _run("subtract", demo, "--in-field", "in_field", "--remanent", "remanent",
         "--name", "induced", "--overwrite")
    _run("susceptibility", demo, "--entry", "induced", "--name", "chi", "--thickness-um", "30")
    _run("magnetization", demo, "--entry", "remanent", "--name", "mag", "--thickness-um", "30",
         "--direction", "0,0,1")
    _run("background", demo, "--entry", "remanent", "--name", "bg", "--model", "plane",
         "--border-um", "40", "--background-rect", "11400,11500,11400,13600",
         "--sample-polygon=11600,11600;13400,11600;13400,13400;11600,13400",
         "--sample-polygon=11450,13450;11550,13450;11500,13550")  # two: a row of NaN between
    _run("level", demo, "--entry", "remanent", "--name", "lev", "--border-um", "40")
    _run("crop", demo, "--entry", "remanent", "--name", "part", "--x-um", "12400,12600",
         "--y-um", "12400,12600")
    _run("susceptibility", demo, "--entry", "induced", "--name", "chi", "--thickness-um", "20",
         "--overwrite")

    mmt = d / "mmt.h5"
    _run("mmt", "synth", "--out", mmt, "--name", "synth", "--size-um", "40,40",
         "--thickness-um", "10", "--density-per-mm3", "3e5", "--step-um", "2", "--height-um",
         "5", "--noise-nT", "50", "--seed", "4", "--grains-out", d / "grains.csv",
         "--truth-out", d / "truth.csv")
    _run("mmt", "invert", mmt, "--entry", "synth", "--grains", d / "grains.csv",
         "--out", d / "result.csv")
    _run("crop", mmt, "--entry", "synth", "--name", "tiled", "--x-um", "0,40", "--y-um",
         "0,40")  # the same scan again, inverted in tiles on Dask
    # a worker in this process: one of its own would import smm-daq and load the kernels again
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        _run("mmt", "invert", mmt, "--entry", "tiled", "--grains", d / "grains.csv",
             "--out", d / "tiled.csv", "--tile-um", "20", "--scheduler",
             cluster.scheduler_address)

    models = d / "models.h5"  # point-source grains, multipoles, a joint fit, the imports
    for name, height in (("low", "2"), ("high", "4")):
        _run("mmt", "synth", "--out", models, "--name", name, "--model", "quadrupole",
             "--size-um", "30,30", "--thickness-um", "10", "--density-per-mm3", "3e5",
             "--step-um", "2", "--height-um", height, "--noise-nT", "20", "--seed", "4",
             "--grains-out", d / "points.txt", "--truth-out", d / "truth_q.csv", "--overwrite")
    _run("mmt", "invert", models, "--entry", "low", "--entry", "high", "--grain-format",
         "points", "--grains", d / "points.txt", "--model", "quadrupole",
         "--out", d / "joint.csv")
    _run("import", "mpe", TESTS / "data" / "MetaDict_mpe_demo.json",
         TESTS / "data" / "MagneticSample_mpe_demo.npz", "--out", models, "--name", "mpe")
    _run("mmt", "invert", models, "--entry", "mpe", "--grain-format", "mpe", "--grains",
         TESTS / "data" / "MagneticSample_mpe_demo.npz", "--model", "dipole",
         "--out", d / "mpe.csv")
    np.savetxt(d / "qdm.txt", np.arange(12.0).reshape(3, 4) * 1e-6)
    (d / "qdm.json").write_text(json.dumps({
        "Sensor center domain LL-x-y": [0.0, 1e-5], "Sensor center domain UR-x-y": [3e-6, 1.2e-5],
        "Scan spacing": 1e-6, "Scan delta-x": 5e-7, "Scan delta-y": 5e-7, "Scan height": 4e-6}))
    _run("import", "mmt-scan", d / "qdm.txt", "--params", d / "qdm.json", "--out", models,
         "--name", "qdm")
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[1:3, 1:4] = 200
    write_optical_entry(models, "thin_section", image, fit_affine(
        np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]),
        np.array([[0.0, 0.0], [4e-5, 0.0], [0.0, 3e-5]])), image_file="ts.png")

    fly = d / "fly.h5"
    _run("scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um", "20",
         "--field-uT", "0,30,0", "--name", "fly", "--out", fly, "--time-scale", "10",
         "--fly", "--pixel-time-s", "0.05")

    killed = d / "killed.h5"
    proc = subprocess.run([sys.executable, "-c", KILLED_SCAN, str(killed), str(TESTS)],
                          check=False, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    resumed = d / "resumed.h5"
    shutil.copy(killed, resumed)
    from acq_fakes import fake_rig

    from smm_daq.acquisition.sequencer import Sequencer

    assert Sequencer(fake_rig(), resumed, _plan(), resume=True).run() == "finished"

    mid_write = d / "mid_write.h5"
    shutil.copy(killed, mid_write)
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(mid_write)],
                          check=False, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    return {"demo": demo, "mmt": mmt, "models": models, "fly": fly, "killed": killed,
            "resumed": resumed, "mid_write": mid_write, "kinds": _every_kind(d)}


# -- what every reader must find -----------------------------------------------------------


def _default_nxdata(f: h5py.File, entry: str) -> h5py.Group:
    """Follow the entry's `default` to its NXdata and check the plot it makes."""
    g = f[entry]
    assert text(g.attrs["NX_class"]) == "NXentry"
    nxdata = g[text(g.attrs["default"])]
    assert text(nxdata.attrs["NX_class"]) == "NXdata"
    signal = nxdata[text(nxdata.attrs["signal"])]
    assert "units" in signal.attrs or signal.dtype.kind in "iu", signal.name  # counts, pixels
    axes = [text(a) for a in np.atleast_1d(nxdata.attrs["axes"])]
    assert len(axes) == signal.ndim
    for i, name in enumerate(axes):
        assert nxdata[name].shape == (signal.shape[i],), nxdata[name].name
        assert "units" in nxdata[name].attrs or nxdata[name].dtype.kind in "iu"
    for key in [*nxdata.keys()]:
        if key == "errors" or key.endswith("_errors"):
            of = text(nxdata.attrs["signal"]) if key == "errors" else key[: -len("_errors")]
            assert nxdata[key].shape == nxdata[of].shape
            assert text(nxdata[key].attrs["units"]) == text(nxdata[of].attrs["units"])
    return nxdata


# names whose last words UDUNITS reads as a unit, though they name a quantity
NOT_UNITS = {"soft_limit_min", "soft_limit_max", "coefficient_units"}


def _udunits_tail(name: str) -> bool:
    """Whether the name ends in words UDUNITS-2 reads as a dimensioned unit (`noise_T`,
    `q20_Am3`, `density_per_mm3`): the file's names judged by cf-units, not by our own list
    of suffixes, which can miss one."""
    if name in NOT_UNITS:
        return False
    words = name.split("_")
    for k in range(1, len(words)):
        try:
            unit = Unit(" ".join(words[k:]).replace(" per ", "/").replace("per ", "/"))
        except ValueError:
            continue
        if not unit.is_dimensionless() and not unit.is_unknown():
            return True
    return False


def _check_h5py(path: Path) -> None:
    with h5py.File(path, "r") as f:  # plain h5py: no SWMR, no repair
        root_default = text(f.attrs["default"])
        assert root_default in f, f"root default {root_default!r} is not an entry"
        for entry in f:
            _default_nxdata(f, entry)
        named = []
        f.visititems(lambda name, obj: named.append(name)
                     if isinstance(obj, h5py.Dataset) and "snapshot/json" not in name else None)
        with_units = [n for n in named if split_units(n.rsplit("/", 1)[-1])[1] is not None
                      or _udunits_tail(n.rsplit("/", 1)[-1])]
        assert with_units == [], "unit in a dataset's name"
        for name in named:  # every unit in UDUNITS spelling (UDUNITS-2 itself parses it)
            if "units" in f[name].attrs:
                Unit(text(f[name].attrs["units"]))


def _check_h5dump(path: Path) -> None:
    if H5DUMP is None:
        if os.environ.get("CI"):
            pytest.fail("h5dump (Debian's hdf5-tools) is missing; .ci/run installs it")
        pytest.skip("h5dump (hdf5-tools) is not installed here; CI installs it")
    version = subprocess.run([H5DUMP, "--version"], capture_output=True, text=True).stdout
    assert re.search(r"Version 1\.\d+", version), version  # an HDF5 1.x reader
    out = subprocess.run([H5DUMP, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "error" not in out.stderr.lower()


def _check_silx(path: Path) -> None:
    import silx.io
    from silx.io import nxdata as silx_nxdata

    with silx.io.open(str(path)) as f:
        assert silx_nxdata.get_default(f) is not None
        for entry in f:
            plot = silx_nxdata.get_default(f[entry])
            assert plot is not None and plot.is_valid, entry
            for i, axis in enumerate(plot.axes):
                assert axis is not None and axis.shape == (plot.signal.shape[i],), entry
            if plot.errors is not None:
                assert plot.errors.shape == plot.signal.shape


def _check_nexusformat(path: Path) -> None:
    from nexusformat.nexus import nxload
    from nexusformat.nexus.validate import validate_file

    root = nxload(str(path), "r")
    try:
        tree = root.tree  # every group, field and attribute read and shown
        assert all(f"{e.nxname}:NXentry" in tree for e in root.NXentry)
        assert root.get_default() is not None  # the root's default leads to a plot
        for entry in root.NXentry:
            default = entry.get_default()  # the entry's own default, never a fallback
            assert default is not None and default.nxclass == "NXdata", entry.nxpath
            plot = entry.plottable_data
            assert plot is not None and plot.nxsignal is not None, entry.nxpath
            assert plot.nxpath == default.nxpath, entry.nxpath
            assert plot.nxsignal.dtype.kind in "iu" or plot.nxsignal.attrs["units"]
    finally:
        root.nxfile.close()
    warnings_errors = validate_file(str(path))
    assert warnings_errors is not None and warnings_errors[1] == 0


@functools.cache
def _punx_validator():
    """punx's validator of its default (bundled) NeXus definitions, as `punx validate` makes
    it: made once, since loading the definitions was most of a `punx validate` process's
    three seconds a file."""
    from punx import cache_manager, validate

    return validate.Data_File_Validator(cache_manager.CacheManager().default_file_set.ref)


def _check_punx(path: Path) -> None:
    validator = _punx_validator()
    try:
        validator.validate(str(path))  # what `punx validate FILE` runs, findings afresh
        errors = [f"{f.h5_address}: {f.test_name}: {f.comment}"
                  for f in validator.validations if f.status.key == "ERROR"]
    finally:
        validator.close()
    assert validator.validations and errors == [], errors[:20]


READERS = {"h5py": _check_h5py, "h5dump": _check_h5dump, "silx": _check_silx,
           "nexusformat": _check_nexusformat, "punx": _check_punx}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", ["demo", "mmt", "models", "fly", "killed", "resumed", "kinds"])
def test_every_file_opens_and_plots_in_every_reader(files, name, reader):
    READERS[reader](files[name])


def test_the_file_of_every_kind_holds_each_kind_as_made(files):
    """What the readers open in "kinds" is what `EVERY_KIND` says: a recipe's entries (their
    recipe kept), a resumed scan's runs, an MMT result of the layout written now, and a scan
    still being written."""
    from smm_daq.analysis.mmt.result_file import RESULT_VERSION, VERSION_ATTRIBUTE

    path = files["kinds"]
    assert {e.name: e.kind for e in list_entries(path)} == EVERY_KIND
    with h5py.File(path, "r") as f:
        assert {n for n in f if text(f[n]["status"][()]) != "finished"} == {"live"}
        assert all("remanent and induced" in text(f[n]["recipe"][()]) for n in ("rem", "inf"))
        # the recipe's subtraction said nothing of the recipe that made it, as its scans do
        assert text(f["induced/process/parameters/recipe"][()]) == text(f["rem/recipe"][()])
        assert f["resumed/runs/run"][()].tolist() == [0, 1]
        assert int(f["synth_mmt"].attrs[VERSION_ATTRIBUTE]) == RESULT_VERSION
        assert (text(f["live/status"][()]), text(f["live/state"][()])) == (
            "interrupted", "running")
        assert 0 < np.count_nonzero(f["live/data/line_done"][()]) < f["live/data/Bz"].shape[0]


# the datasets and attributes that record how an entry was made, and their units (None: a
# count, an identifier or text, which has none): each reader gives what h5py does
RECORDS = {"demo": {"bg/process/parameters/sample_polygons": "m",
                    "bg/process/parameters/background_rectangles": "m",
                    "bg/process/parameters/background_border": "m",
                    "bg/process/parameters/background_pixels": "1",
                    "remanent/runs/noise_seed": None,
                    "remanent/runs/noise_measurement": None,
                    "remanent/runs/program_version": None,
                    "remanent/profile@path": None,
                    "remanent/program_name@version": None,
                    "bg/process/parameters/command": None},
           "kinds": {"rem/recipe@path": None,
                     "induced/process/parameters/recipe_file": None,
                     "induced/process/parameters/command": None}}


def _h5dump_values(path: Path, names: list[str]) -> dict[str, list[str]]:
    """What h5dump prints of each dataset or attribute (`OBJECT@ATTRIBUTE`) in `names`: its
    values as words, text without its quotes."""
    args = [a for n in names for a in (["-a", "/" + n.replace("@", "/")] if "@" in n
                                        else ["-d", "/" + n])]
    out = subprocess.run([H5DUMP, "-y", "-w", "0", "-A", "0", *args, str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "error" not in out.stderr.lower(), out.stderr[-2000:]
    blocks = re.findall(r'(?:DATASET|ATTRIBUTE) "([^"]*)" \{.*?DATA \{\n(.*?)\n\s*\}', out.stdout,
                        re.S)
    assert len(blocks) == len(names), out.stdout[-2000:]
    return {name: [quoted or bare for quoted, bare in _WORD.findall(data)]
            for name, (_, data) in zip(names, blocks, strict=True)}


_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s,]+)')  # h5dump's text in quotes, else a number


def _same(got: object, want: object, where: str) -> None:
    """`got` (a reader's value, or h5dump's words) is h5py's `want`: numbers to h5dump's
    printed digits, NaN where NaN, text as text."""
    want = np.asarray(want)
    if want.dtype.kind in "OSU":
        words = [text(w) for w in np.atleast_1d(got)]
        assert words == [text(w) for w in np.atleast_1d(want)], where
        return
    if want.dtype.kind in "iu":  # a noise seed's 63 bits, which a float would round
        assert [int(w) for w in np.ravel(got)] == want.ravel().tolist(), where
        return
    np.testing.assert_allclose(np.asarray(got, dtype=float).ravel(),
                               want.astype(float).ravel(), rtol=1e-5, err_msg=where)


@pytest.mark.parametrize("name", RECORDS)
def test_how_each_entry_was_made_reads_alike_in_every_reader(files, name):
    """The records of how an entry was made (the background selected, a polygon list's NaN
    rows among them; each run's noise base and version; the profile's and recipe's files, the
    version and the command recorded) read in h5dump, silx and nexusformat as h5py reads them,
    with their units."""
    import silx.io
    from nexusformat.nexus import nxload

    if H5DUMP is None:
        pytest.skip("h5dump (hdf5-tools) is not installed here; CI installs it")
    path, records = files[name], RECORDS[name]
    dumped = _h5dump_values(path, list(records))
    root = nxload(str(path), "r")
    try:
        with h5py.File(path, "r") as f, silx.io.open(str(path)) as s:
            for record, units in records.items():
                node, _, attribute = record.partition("@")
                if attribute:
                    want = f[node].attrs[attribute]
                    got = {"silx": s[node].attrs[attribute],
                           "nexusformat": root[node].attrs[attribute]}
                else:
                    want = f[record][()]
                    got = {"silx": s[record][()], "nexusformat": root[record].nxdata}
                    for reader, read_units in (("h5py", f[record].attrs.get("units")),
                                               ("silx", s[record].attrs.get("units")),
                                               ("nexusformat", root[record].attrs.get("units"))):
                        assert (None if read_units is None else text(read_units)) == units, \
                            (reader, record)
                _same(dumped[record], want, f"h5dump {record}")
                for reader, value in got.items():
                    _same(value, want, f"{reader} {record}")
    finally:
        root.nxfile.close()


# -- what each product is -------------------------------------------------------------------


def test_chi_and_magnetization_plot_as_themselves_with_their_sd(files):
    with h5py.File(files["demo"], "r") as f:
        for entry, signal, units in (("chi", "chi", "1"), ("mag", "M", "A/m")):
            plot = _default_nxdata(f, entry)
            assert text(plot.attrs["signal"]) == signal
            assert text(plot[signal].attrs["units"]) == units
            assert np.all(plot["errors"][()][np.isfinite(plot["errors"][()])] >= 0)
            process = f[entry]["process"]
            assert text(process.attrs["NX_class"]) == "NXprocess"
            assert text(process["program"][()]) == "smm-daq"
            assert [text(s) for s in process["sources"][()]] == [
                "induced" if entry == "chi" else "remanent"]
            assert text(process["parameters/thickness"].attrs["units"]) == "m"
        assert f["chi/process/parameters/thickness"][()] == pytest.approx(20e-6)  # overwritten
        reg = f["induced/registration"]
        assert text(reg.attrs["NX_class"]) == "NXprocess"
        assert text(reg["shift"].attrs["units"]) == "m"
        np.testing.assert_allclose(f["induced/sample/magnetic_field"][()], [0, 40e-6, 0])
        assert text(f["remanent/instrument/stage_x"].attrs["NX_class"]) == "NXpositioner"
        np.testing.assert_array_equal(f["remanent/instrument/stage_x/value"][()],
                                      f["remanent/data/x"][()])


def test_mmt_result_plots_the_grain_table_with_errors(files):
    with h5py.File(files["mmt"], "r") as f:
        plot = _default_nxdata(f, "synth_mmt")
        assert text(plot.attrs["signal"]) == "mx"
        assert [text(s) for s in plot.attrs["auxiliary_signals"]] == ["my", "mz"]
        assert text(plot["mx"].attrs["units"]) == "A/m"
        assert plot["mx_errors"].shape == plot["mx"].shape
        assert np.all(plot["mx_errors"][()] > 0)
        assert text(plot["volume"].attrs["units"]) == "um3"
        fitted = f["synth_mmt/fitted"]
        assert text(fitted.attrs["NX_class"]) == "NXdata"
        assert text(fitted["Bz"].attrs["units"]) == "T"


def test_overwrite_leaves_every_default_pointing_at_an_entry(files):
    with h5py.File(files["demo"], "r") as f:
        assert text(f.attrs["default"]) == "chi"  # the last entry written
        assert not any(name.endswith(".new") for name in f)


# -- crashes ----------------------------------------------------------------------------------


def test_killed_scan_says_interrupted_in_the_file_and_resume_completes_it(files):
    with h5py.File(files["killed"], "r") as f:
        assert text(f["k/status"][()]) == "interrupted"
        assert text(f["k/end_time"][()]) != ""
        assert "smm-daq resume" in text(f["k/message"][()])
        done = f["k/data/line_done"][()].astype(bool)
        before = f["k/data/Bz"][()]
    assert done.tolist()[:3] == [True, True, True] and not done.all()
    assert list_entries(files["killed"])[0].status == "interrupted"
    after = read_map(files["resumed"], "k").bz
    np.testing.assert_array_equal(after[done], before[done])
    assert np.isfinite(after).all()
    with h5py.File(files["resumed"], "r") as f:
        assert text(f["k/status"][()]) == "finished"
    # the field check of each run kept (the killed start's and the resume's), as an NXlog
    assert [c.run for c in read_field_checks(files["resumed"], "k")] == [0, 1]
    from nexusformat.nexus import nxload

    root = nxload(str(files["resumed"]), "r")
    try:
        log = root["k/instrument/field_check/value_log"]
        assert log.nxclass == "NXlog" and log.value.shape == (2, 3)
        assert str(log.value.attrs["units"]) == "T" and log.time.shape == (2,)
        # the killed run's lines and the resume's on one clock: each line's run, each run's start
        runs = root["k/runs"]
        assert runs.nxclass == "NXcollection" and runs.start_epoch.shape == (2,)
        line_run = root["k/data/line_run"].nxvalue
        times = root["k/data/time"].nxvalue
    finally:
        root.nxfile.close()
    np.testing.assert_array_equal(line_run, np.where(done, 0, 1))
    assert np.nanmin(times[~done]) > np.nanmax(times[done])


def test_a_scan_killed_during_a_write_is_repaired_by_the_command(files, capsys):
    path = files["mid_write"]
    assert marked_open(path)
    with pytest.raises(OSError):
        h5py.File(path, "r").close()
    assert main(["repair", str(path)]) == 0
    assert "cleared the open-for-write mark" in capsys.readouterr().out
    assert not marked_open(path)
    with h5py.File(path, "r") as f:
        assert text(f["k/status"][()]) == "interrupted"
    for check in (_check_h5py, _check_h5dump, _check_nexusformat):
        check(path)


def test_repair_makes_a_file_of_an_earlier_version_readable_by_hdf5_1x(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w", libver="latest") as f:  # how earlier versions wrote
        f.attrs["creator"] = "smm-daq 0.1.0"
        f.create_dataset("scan/data/line_done", data=np.array([True, False]))
        f["scan"].attrs["NX_class"] = "NXentry"
    assert main(["repair", str(path)]) == 0
    with h5py.File(path, "r") as f:
        assert f["scan/data/line_done"][()].tolist() == [True, False]
        assert text(f["scan"].attrs["NX_class"]) == "NXentry"
    if H5DUMP is not None:
        out = subprocess.run([H5DUMP, str(path)], capture_output=True, text=True)
        assert out.returncode == 0 and "TRUE" in out.stdout


def test_repair_says_which_entries_it_changed_and_no_more(tmp_path, capsys):
    """The summary names the scans it marked "interrupted" (left "running" by a writer of an
    earlier version) and an unfinished entry it left out; an aborted scan keeps its status
    and is not said to read "interrupted"."""
    from smm_daq.storage.staging import STAGING

    path = tmp_path / "old.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["creator"] = "smm-daq 0.1.0"
        for name, status in (("stopped", "aborted"), ("done", "finished")):
            f.create_dataset(f"{name}/status", data=status)
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out  # strings only: 1.10 decodes it, nothing to rewrite
    assert "left as it is" in out and "interrupted" not in out
    with h5py.File(path, "r") as f:
        assert text(f["stopped/status"][()]) == "aborted"

    with h5py.File(path, "a", libver="latest") as f:
        f.create_dataset("old_scan/status", data="running")
        f.create_group("half_written").attrs[STAGING] = "x"
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert "'old_scan' now reads 'interrupted'" in out
    assert "left out 'half_written'" in out and "every entry kept" not in out
    with h5py.File(path, "r") as f:
        assert text(f["old_scan/status"][()]) == "interrupted" and "half_written" not in f


def test_repair_of_a_file_that_is_not_hdf5_changes_nothing(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    assert main(["repair", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.h5" in err and "Traceback" not in err
    assert junk.read_bytes() == b"not hdf5 at all"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.h5"]


@pytest.mark.parametrize("creator", [None, "another-daq 2.3"])
def test_repair_leaves_another_programs_file_alone(tmp_path, capsys, creator):
    path = tmp_path / "theirs.h5"
    with h5py.File(path, "w", libver="latest") as f:
        if creator is not None:
            f.attrs["creator"] = creator
        f.create_dataset("entry/data", data=np.arange(3))
    before = path.read_bytes()
    assert main(["repair", str(path)]) == 2
    assert "was not made by smm-daq" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.h5"]


def test_a_damaged_superblock_marked_open_is_refused_not_retried(tmp_path, capsys):
    """Its open-for-write mark set but its checksum not rewritten: an SWMR open would retry
    the superblock for many minutes, so the damage is named from the checksum first."""
    from smm_daq.storage.superblock import superblock_intact

    path = tmp_path / "damaged.h5"
    x = np.arange(4) * 1e-5
    write_map_entry(path, MapData(np.outer(x, x), x, x, name="m"), kind="import")
    assert superblock_intact(path)
    data = bytearray(path.read_bytes())
    data[11] = 0x05  # the flags byte of a version 3 superblock
    path.write_bytes(bytes(data))
    assert not superblock_intact(path)
    assert main(["repair", str(path)]) == 2
    assert "superblock fails its checksum" in capsys.readouterr().err
    assert main(["info", str(path)]) == 2
    assert "checksum" in capsys.readouterr().err
    assert path.read_bytes() == bytes(data)


def test_repair_leaves_an_intact_current_file_as_it_is(tmp_path, capsys):
    """A file no writer left unfinished, already in the HDF5 1.10 format, is neither rewritten
    nor said to be (its bytes and modification time kept); one of an earlier version's format
    still is, once, and left as it is from then on."""
    path = tmp_path / "s.h5"
    x = np.arange(4) * 1e-5
    write_map_entry(path, MapData(np.outer(x, x), x, x, name="m"), kind="import")
    before, stat = path.read_bytes(), path.stat()
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: intact and in the HDF5 1.10 format already: left as it is" in out
    assert "rewritten" not in out
    assert path.read_bytes() == before
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)

    old = tmp_path / "old.h5"
    with h5py.File(old, "w", libver="latest") as f:  # how earlier versions wrote
        f.attrs["creator"] = "smm-daq 0.1.0"
        f.create_dataset("scan/data/line_done", data=np.array([True, False]))
    assert main(["repair", str(old)]) == 0
    assert "rewritten in the HDF5 1.10 format" in capsys.readouterr().out
    assert main(["repair", str(old)]) == 0
    assert "left as it is" in capsys.readouterr().out


@pytest.mark.skipif(H5DUMP is None or "Version 1." not in subprocess.run(
    [H5DUMP, "--version"], capture_output=True, text=True).stdout, reason="needs HDF5 1.x's h5dump")
def test_repair_tells_the_format_as_hdf5_1_10_reads_it(tmp_path, capsys):
    """What a writer not bounded to 1.10 encodes beyond it (a boolean's type, a compressed
    dataset's layout, a boolean attribute) is rewritten; what it encodes as 1.10 does (strings,
    floats, resizable chunks) is left as it is; h5dump of HDF5 1.x agrees on each."""
    made = {
        "bool": lambda f: f.create_dataset("b", data=np.array([True, False])),
        "gzip": lambda f: f.create_dataset("z", data=np.arange(30.0), chunks=(10,),
                                           compression="gzip", shuffle=True),
        "bool_attr": lambda f: f["/"].attrs.__setitem__("flag", np.bool_(True)),
        "plain": lambda f: (f.create_dataset("s/status", data="aborted"),
                            f.create_dataset("x", data=np.arange(30.0), chunks=(10,),
                                             maxshape=(None,))),
    }
    for name, make in made.items():
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w", libver="latest") as f:
            f.attrs["creator"] = "smm-daq 0.1.0"
            make(f)
        read_by_1x = subprocess.run([H5DUMP, str(path)], capture_output=True).returncode == 0
        assert main(["repair", str(path)]) == 0
        out = capsys.readouterr().out
        assert ("left as it is" in out) == read_by_1x, (name, out)
        assert ("rewritten in the HDF5 1.10 format" in out) != read_by_1x, (name, out)
        assert subprocess.run([H5DUMP, str(path)], capture_output=True).returncode == 0
