"""A first run says it compiles: the kernels' numba cache is told apart from a cold one."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from smm_daq.analysis.mmt.models import compiled
from smm_daq.cli.main import main

KERNEL = '''
from numba import njit, prange


@njit(cache=True, parallel=True)
def doubled(a):
    out = a.copy()
    for i in prange(a.size):
        out[i] = 2 * a[i]
    return out


@njit(cache=True)
def helper(a):
    return a
'''


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_a_kernel_is_cached_once_called_and_cold_again_when_its_source_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    source = tmp_path / "smm_first_run_kernels.py"
    source.write_text(KERNEL)
    module = _load(source)
    try:
        assert [k.py_func.__name__ for k in compiled._top_level_kernels(module)] == ["doubled"]
        assert not compiled.kernels_cached(module)
        np.testing.assert_array_equal(module.doubled(np.arange(3.0)), [0.0, 2.0, 4.0])
        assert compiled.kernels_cached(module)
        source.write_text(KERNEL + "# upgraded\n")  # an upgrade: the next run compiles it
        assert not compiled.kernels_cached(_load(source))
    finally:
        del sys.modules[source.stem]


def test_a_cache_made_by_another_numba_version_is_cold(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """numba ignores an index another numba version wrote and compiles again: an upgraded
    numba is a first run, though the index is newer than the source."""
    import pickle

    import numpy as np

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    source = tmp_path / "smm_upgraded_kernels.py"
    source.write_text(KERNEL)
    module = _load(source)
    try:
        module.doubled(np.arange(3.0))
        assert compiled.kernels_cached(module)
        index = Path(module.doubled._cache._cache_file._index_path)
        with open(index, "rb") as f:
            pickle.load(f)  # the version of numba that wrote it
            rest = f.read()
        with open(index, "wb") as f:
            pickle.dump("0.1.0", f, protocol=-1)
            f.write(rest)
        assert not compiled.kernels_cached(module)
    finally:
        del sys.modules[source.stem]


@pytest.mark.parametrize("cached", [True, False])
def test_mmt_synth_says_when_it_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         cached: bool) -> None:
    monkeypatch.setattr(compiled, "kernels_cached", lambda *modules: cached)
    args = ["mmt", "synth", "--out", str(tmp_path / "s.h5"), "--size-um", "30,30",
            "--thickness-um", "10", "--step-um", "3", "--density-per-mm3", "2e5",
            "--grains-out", str(tmp_path / "g.csv"), "--truth-out", str(tmp_path / "t.csv")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert ("compiling the cuboid model's kernels for this machine" in err) is not cached


@pytest.mark.parametrize("model", ["cuboid", "dipole", "octupole"])
def test_the_notice_says_once_compiled_it_is_not_again_and_about_how_long_it_takes(
        monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    """A wait of unknown length reads as a hang: the notice says it is the first run only and
    about how many seconds it compiles for (a figure, not checked against a clock here)."""
    monkeypatch.setattr(compiled, "kernels_cached", lambda *modules: False)
    notice = compiled.first_run_notice(model)
    assert re.fullmatch(rf"compiling the {model} model's kernels for this machine \(first run "
                        r"only, or the first after an upgrade: about [1-9]\d* s\)", notice)


@pytest.mark.parametrize("model", ["cuboid", "dipole", "one map"])
def test_the_inversion_says_it_compiles_before_its_first_block(
        monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    """The window's MMT tab shows the inversion's messages: the notice comes first."""
    import numpy as np

    from smm_daq.analysis.mmt import synth
    from smm_daq.analysis.mmt.solver.inversion import invert_map
    from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans

    rng = np.random.default_rng(0)
    sample = synth.make_sample((30e-6, 30e-6), 10e-6, 2e5, rng)
    data = synth.scan(sample, height=2e-6, step=3e-6, sensor_size=(0.0, 0.0), noise=1e-9,
                      rng=rng)
    monkeypatch.setattr(compiled, "kernels_cached", lambda *modules: False)
    said: list[str] = []
    if model == "one map":  # the cuboid model's own solver
        invert_map(data, sample.grains, height=2e-6, sensor_size=(0.0, 0.0), sigma=1e-9,
                   progress=said.append)
        model = "cuboid"
    else:
        invert_scans([Scan(data, 2e-6, (0.0, 0.0), sigma=1e-9)], sample.grains, model=model,
                     progress=said.append)
    assert said[0].startswith(f"compiling the {model} model's kernels for this machine")
    assert said[1].startswith("QR of the Green's matrix")


@pytest.mark.parametrize("kernel", [
    "def doubled(a):\n    return 2 * a\n",  # as NUMBA_DISABLE_JIT leaves a kernel
    "from numba import njit\n\n\n@njit(cache=False, parallel=True)\n"
    "def doubled(a):\n    return 2 * a\n",  # no cache: it cannot be told
], ids=["plain function", "uncached kernel"])
def test_what_cannot_be_a_first_run_says_nothing(tmp_path: Path, kernel: str) -> None:
    """Under NUMBA_DISABLE_JIT the kernels are plain functions: nothing compiles, so no
    notice (it said "compiling" on every run); a kernel without a cache is not told."""
    source = tmp_path / "smm_plain_kernels.py"
    source.write_text(kernel)
    module = _load(source)
    try:
        assert compiled.kernels_cached(module)
    finally:
        del sys.modules[source.stem]


def test_the_notice_does_not_import_numba_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check must not be what breaks every inversion when numba moves an internal: it
    tells a kernel by its options, not by numba's internal dispatcher class."""
    import importlib

    monkeypatch.setitem(sys.modules, "numba.core.registry", None)  # import fails
    try:
        importlib.reload(compiled)
        assert [k.py_func.__name__ for k in compiled._top_level_kernels(cuboid_module())]
    finally:
        monkeypatch.undo()
        importlib.reload(compiled)


def cuboid_module():
    from smm_daq.analysis.mmt.models import cuboid

    return cuboid


def test_every_block_kernel_gets_its_rows_in_one_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows wanted C-ordered (a synthetic scan), Fortran-ordered (the QR's blocks), strided
    (one scan's part of a joint block) or as one row (a last block of one sensor) all reach
    the kernels Fortran-ordered, so numba compiles each kernel once, not once per layout;
    every caller gets the same rows."""
    import numba
    import numpy as np

    from smm_daq.analysis.grains import from_arrays
    from smm_daq.analysis.mmt.models import cuboid, multipole
    from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains

    layouts: set[tuple[str, str]] = set()

    def spy(module, name: str, rows_at: int) -> None:
        kernel = getattr(module, name)

        def called(*args):
            layouts.add((name, numba.typeof(args[rows_at]).layout))
            return kernel(*args)

        monkeypatch.setattr(module, name, called)

    for name in ("_grid_exact", "_order_2_block", "_orders_3_4_block", "_green_block"):
        spy(cuboid, name, -1)
    spy(cuboid, "_near_fill", 3)
    spy(multipole, "_block_point", -1)
    spy(multipole, "_block_corners", -1)
    um = 1e-6
    grains = from_arrays(np.array([[-3, -2, -6, 2, 2, 2], [-1, -2, -6, 2, 2, 2],
                                   [3, 1, -9, 3, 2, 2]]) * um, np.array([1, 1, 2]))
    X, Y = np.meshgrid(np.arange(-8, 8) * um, np.arange(-6, 6) * um)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * um)]
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    models = [cuboid.GreenModel.build(grains, (size, size), lo, hi, um) for size in (0, um)]
    models += [MultipoleModel.build(point_grains(grains.centroids(), grains.volumes()),
                                    Sensor.from_size(size), "quadrupole")
               for size in ((0.0, 0.0), (um, um))]
    for model in models:
        shape = (len(sensors), model.n_columns)
        wanted = model.block(sensors, np.empty(shape, order="F"))
        joint = np.zeros((shape[0] + 2, shape[1]), order="F")
        for out in (np.empty(shape), joint[2:]):
            np.testing.assert_array_equal(model.block(sensors, out), wanted)
        one = np.empty((1, shape[1]))  # one row: C- and Fortran-ordered at once
        np.testing.assert_allclose(model.block(sensors[5:6], one), wanted[5:6],  # alone: not
                                   rtol=1e-9)  # on a lattice of shared corners, its rounding
        if isinstance(model, cuboid.GreenModel):
            np.testing.assert_array_equal(model.block(sensors), wanted)
            model.near_part(sensors, joint[2:])
            model.near_part(sensors[5:6], wanted[5:6])
    assert {layout for _, layout in layouts} == {"F"}
    assert {name for name, _ in layouts} == {"_grid_exact", "_order_2_block",
                                             "_orders_3_4_block", "_green_block", "_near_fill",
                                             "_block_point", "_block_corners"}
