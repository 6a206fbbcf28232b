"""Compile numba's kernels into the cache before the test suite runs (a fresh clone's first
run, as in CI): two processes at once, each compiling half of them, with the signatures the
tests and the commands call them with.

    python tests/warm_numba.py [--part cuboid|other]

Without the warm-up, pytest's two workers each compile what their first files need, the
largest kernels in both at once (the cuboid model's block for the MMT tab's and the
files-open-everywhere module's first inversion, the point-source corner kernels); a worker
loads what the other has already written to numba's cache (`cache=True`), but not what it is
still compiling. Here the halves share only four small area-sensor kernels (about 1 s), so
each kernel is compiled about once and the workers load them all. With the cache already
filled this only loads it (a few seconds).
The CUDA-simulator tests (tests/mmt_cudasim_*_case.py) compile for the CPU, each on its own,
the device functions that the CPU kernels inline: those are compiled here too, with the
signatures the simulator calls them with (`NUMBA_DEBUG_CACHE=1` on those scripts shows any
"data saved", a kernel that they still compile).
A kernel left out is compiled by the first test that calls it, as before; so is every kernel
of a half that failed (said on stderr; the exit status is 0, the tests report the error).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

UM = 1e-6
PARTS = ("cuboid", "other")


def _cli(*argv: object) -> None:
    from smm_daq.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"warm_numba: smm-daq {' '.join(map(str, argv))}: exit {code}\n"
                         f"{err.getvalue()}")


def _cuboid() -> None:
    """The cuboid model's first `mmt synth` and `mmt invert`: its block kernels, the cuboid
    expansions, the grain moments; the expansions the CUDA simulator calls."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _cli("mmt", "synth", "--out", d / "mmt.h5", "--name", "synth", "--size-um", "30,30",
             "--thickness-um", "10", "--density-per-mm3", "3e5", "--step-um", "2",
             "--height-um", "5", "--noise-nT", "50", "--seed", "4",
             "--grains-out", d / "grains.csv", "--truth-out", d / "truth.csv")
        _cli("mmt", "invert", d / "mmt.h5", "--entry", "synth", "--grains", d / "grains.csv",
             "--out", d / "result.csv")
    _simulated_cuboid()


def _tuple(n: int) -> object:
    from numba import types

    return types.UniTuple(types.float64, n)


def _simulated_cuboid() -> None:
    """The cuboid model's expansions as the CUDA simulator calls them: from the Python source
    of `cuboid_gpu`'s tiers, one call at a time (about 5 s of compiling)."""
    from numba.types import float64 as f8
    from numba.types import int64 as i8

    from smm_daq.analysis.mmt.models import cuboid

    cuboid._first_scale.compile((f8, f8, i8))
    cuboid._powers.compile((f8,))
    cuboid._add.compile((_tuple(7), _tuple(7)))
    cuboid._even_field.compile((_tuple(7), i8, f8, f8, f8, f8, f8))
    cuboid._even_sums.compile((_tuple(36), i8, i8, i8, _tuple(11), _tuple(11), _tuple(11)))
    cuboid._expansion_to_6.compile((f8,) * 8 + (_tuple(16),))


def _simulated_multipole() -> None:
    """The multipole corner functions as the CUDA simulator's kernels call them, one (x, y,
    z) at a time: every sensor kind and number of coefficients (about 7 s)."""
    from numba.types import float64 as f8

    from smm_daq.analysis.mmt.models import multipole_kernels

    for kind in ("point", "area", "volume"):
        for n in (3, 8, 15):
            getattr(multipole_kernels, f"{kind}_{n}").compile((f8, f8, f8))


def _far_fields() -> None:
    """The cuboid model's grain far fields and near part (a fitted map kept sparse)."""
    from smm_daq.analysis.grains import from_arrays
    from smm_daq.analysis.mmt.models.cuboid import GreenModel

    cub = np.array([[0.0, 0.0, -1.5, 2.0, 1.5, 2.0], [9.0, -6.0, -9.0, 3.0, 4.0, 2.0]]) * UM
    grains = from_arrays(cub, np.array([1, 2]))
    X, Y = np.meshgrid(np.arange(-20, 20) * UM, np.arange(-20, 20) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    for size in (0.0, 1.0 * UM):
        model = GreenModel.build(grains, (size, size), lo, hi, 1.0 * UM)
        model.far_field(sensors, np.ones(model.n_columns))
        # rows of the layout `block` fills (their values do not matter here)
        model.near_part(sensors, np.zeros((len(sensors), model.n_columns), order="F"))


def _other() -> None:
    """The point-source models (point, area and volume sensors: their blocks and fitted
    maps), the forward model of the simulator and the demo (serial and parallel), the
    cuboid model's far fields, and the corner functions the CUDA simulator calls (about as
    many seconds of compiling as `_cuboid`)."""
    from smm_daq.analysis.forward import cuboid_bz, cuboid_bz_kernel
    from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains

    grains = point_grains(np.array([[5.0, 5.0, -3.0], [12.0, 3.0, -6.0]]) * UM,
                          np.full(2, 1e-18))
    X, Y = np.meshgrid(np.arange(0, 20) * UM, np.arange(0, 20) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * UM)]
    for size in ((0.0, 0.0), (1 * UM, 1 * UM), (1 * UM, 1 * UM, 0.5 * UM)):
        model = MultipoleModel.build(grains, Sensor.from_size(size), "dipole")
        model.block(sensors, np.empty((len(sensors), model.n_columns), order="F"))
        model.field(sensors, np.ones(model.n_columns))
    cuboids = np.array([[5.0, 5.0, -3.0, 2.0, 2.0, 2.0]]) * UM
    for n in (4, 30_000):  # below and above the pair count that runs in parallel
        many = np.resize(sensors, (n, 3))
        for size in ((0.0, 0.0), (1 * UM, 1 * UM)):
            cuboid_bz_kernel(many, cuboids, sensor_size=size)
            cuboid_bz(many, cuboids, np.ones((1, 3)), sensor_size=size)
    _far_fields()
    _simulated_multipole()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=PARTS, help="compile this half only, in this process")
    args = ap.parse_args()
    if args.part:
        {"cuboid": _cuboid, "other": _other}[args.part]()
        return 0
    procs = {part: subprocess.Popen([sys.executable, __file__, "--part", part])
             for part in PARTS}
    for part, proc in procs.items():
        if proc.wait() != 0:  # the tests then compile what it left, and report any error
            print(f"warm_numba: the {part} half failed (exit {proc.returncode}); "
                  "the tests compile what it did not", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
