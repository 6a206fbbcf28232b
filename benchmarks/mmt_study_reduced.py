"""A reduced run of seed 001's parameter study (200 × 200 µm, 50 µm thick by default) on a
local Dask cluster; prints the median uncertainty ratio per model and the wall time.

Samples come from `cube_sample` here, not from `smm-daq mmt synth`'s grains of several
cuboids: the seed's placement (non-intersecting,
tops between the surface and 10 µm above the bottom) and magnetization law (|M| = M0 (V/V0)^α
× 10^N(0, 0.5²), φ ~ U(0, 2π), θ ~ U(0, π)), but each grain one cube of 1 to 10 µm instead of
the seed's micro-CT shapes.

    python benchmarks/mmt_study_reduced.py --out /tmp/study [--densities-per-mm3 ...]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import GrainSet, from_arrays
from smm_daq.analysis.mmt.study.grid import SampleSpec, StudySpec, parse_list
from smm_daq.analysis.mmt.study.run import run_study
from smm_daq.analysis.mmt.tiles.cluster import open_client, stderr_progress

UM = 1e-6
M0 = 46.5e3  # A/m, seed 001 eq. 1
ALPHA = -0.355
V0 = math.pi / 6 * UM**3


def cube_sample(sample: SampleSpec, rng: np.random.Generator) -> tuple[GrainSet, np.ndarray]:
    """Cube grains at the sample's density, placed and magnetized as seed 001 §2.1 says."""
    L, T = sample.surface_um, sample.thickness_um
    n = max(1, round(sample.density_per_mm3 * L * L * T * 1e-9))
    boxes = np.zeros((0, 6))
    while boxes.shape[0] < n:
        e = float(np.exp(rng.uniform(math.log(1.0), math.log(10.0))))
        for _ in range(100):
            top = -rng.uniform(0.0, T - 10.0)
            c = np.array([rng.uniform(e / 2, L - e / 2), rng.uniform(e / 2, L - e / 2),
                          top - e / 2])
            if c[2] - e / 2 < -T:
                continue
            gap = np.abs(boxes[:, :3] - c) - (boxes[:, 3:] + e) / 2
            if not np.any(np.all(gap < 0, axis=1)):
                boxes = np.vstack([boxes, np.r_[c, e, e, e]])
                break
    cub = boxes * UM
    vol = cub[:, 3:].prod(axis=1)
    norm = M0 * (vol / V0) ** ALPHA * 10 ** rng.normal(0.0, 0.5, n)
    phi = rng.uniform(0, 2 * math.pi, n)
    theta = rng.uniform(0, math.pi, n)
    m = norm[:, None] * np.c_[np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                              np.cos(theta)]
    return from_arrays(cub, np.arange(1, n + 1)), m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--surface-um", default="200")
    ap.add_argument("--thickness-um", default="50")
    ap.add_argument("--densities-per-mm3", default="2500,10000,25000,50000,100000")
    ap.add_argument("--intervals-um", default="1,2,4,5")
    ap.add_argument("--noise-nT", default="5,20,50,100")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    spec = StudySpec(
        surfaces_um=parse_list("--surface-um", a.surface_um),
        thicknesses_um=parse_list("--thickness-um", a.thickness_um),
        densities_per_mm3=parse_list("--densities-per-mm3", a.densities_per_mm3),
        intervals_um=parse_list("--intervals-um", a.intervals_um, integer=True),  # type: ignore[arg-type]
        noise_nT=parse_list("--noise-nT", a.noise_nT), repeats=a.repeats)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open_client(n_workers=a.workers) as client:
        paths = run_study(spec, out, make=cube_sample, client=client,
                          progress=stderr_progress())
    wall = time.perf_counter() - t0
    import csv

    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"wall time {wall:.1f} s for {len(spec.samples())} samples, {len(rows)} models "
          f"on {a.workers} workers; files in {out}")
    print("density/mm3  interval_um  " + "  ".join(f"{n:>7g}nT" for n in spec.noise_nT)
          + "   (median UR %)")
    for d in spec.densities_per_mm3:
        for i in spec.intervals_um:
            meds = [next(float(r["ur_median_pct"]) for r in rows
                         if float(r["density_per_mm3"]) == d and float(r["interval_um"]) == i
                         and float(r["noise_nT"]) == n) for n in spec.noise_nT]
            print(f"{d:11g}  {i:11d}  " + "  ".join(f"{m:9.3g}" for m in meds))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
