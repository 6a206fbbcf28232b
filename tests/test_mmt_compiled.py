"""A first run says it compiles: the kernels' numba cache is told apart from a cold one."""

from __future__ import annotations

import importlib.util
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
