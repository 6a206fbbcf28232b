"""How far `smm-daq mmt invert`'s answers lie from those of the exact Green's matrix, in units
of their standard deviations, on the medium case of `mmt_cli.py` (200 × 200 × 50 µm,
1e5 grains/mm³, 201² sensors of 1 × 1 µm, 1 µm above, 5 nT):

    python benchmarks/mmt_accuracy.py [--work DIR] [--against RESULT.csv ...]

The reference model has no grain far field and computes every (sensor, cuboid) pair to 1e-8
of the cuboid's scale: by the exact sensor-area form (or its quadrature where that form's
rounding is too large), the cuboid's own expansions only where their bounds are below 1e-8.
This script sets those tolerances for it; both run on the CPU. Printed for the default
model and for each result CSV given with --against (e.g. an earlier version's
`smm-daq mmt invert` on the same files, kept with mmt_cli.py --work): the largest and median
|M̂ − M̂_ref| / SD_ref over grains and axes, and the default model's time against the
reference's.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import read_grains
from smm_daq.analysis.mmt.models import cuboid
from smm_daq.analysis.mmt.solver.inversion import invert_map
from smm_daq.storage.nexus import read_map

sys.path.insert(0, str(Path(__file__).parent))
from mmt_cli import _prepare_medium  # the same files as the command-line case

AXES = ("mx_A_per_m", "my_A_per_m", "mz_A_per_m")
REFERENCE_TOLERANCE = 1e-8


def _shift(m: np.ndarray, ref: np.ndarray, sd: np.ndarray) -> str:
    d = np.abs(m - ref) / sd
    return f"largest {d.max():.4f} SD, median {np.median(d):.5f} SD"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="the medium case's files (made here when absent)")
    parser.add_argument("--against", nargs="*", default=[],
                        help="result CSVs of `smm-daq mmt invert` on the same files")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mmt_accuracy_"))
    work.mkdir(parents=True, exist_ok=True)
    h5, grains_csv = work / "medium.h5", work / "medium_grains.csv"
    if not (h5.exists() and grains_csv.exists()):
        _prepare_medium(work)
    data = read_map(h5, "synthetic")
    grains = read_grains(grains_csv)
    kwargs = {"height": data.height, "sensor_size": data.sensor_size, "device": "cpu"}

    invert_map(data, grains, **kwargs)  # compiled and loaded outside the timing
    t = time.perf_counter()
    default = invert_map(data, grains, **kwargs)
    t_default = time.perf_counter() - t
    cuboid.CUBOID_TOLERANCE = REFERENCE_TOLERANCE
    cuboid.NEAR_TOLERANCE = REFERENCE_TOLERANCE
    t = time.perf_counter()
    ref = invert_map(data, grains, exact=True, **kwargs)
    t_ref = time.perf_counter() - t
    print(f"{grains.n_grains} grains; reference (exact model to {REFERENCE_TOLERANCE:g}) "
          f"{t_ref:.2f} s, default {t_default:.2f} s")
    print(f"  default model:    {_shift(default.magnetization, ref.magnetization, ref.sd)}")
    for path in args.against:
        with open(path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        m = np.array([[float(r[k]) for k in AXES] for r in rows])
        print(f"  {path}: {_shift(m, ref.magnetization, ref.sd)}")


if __name__ == "__main__":
    main()
