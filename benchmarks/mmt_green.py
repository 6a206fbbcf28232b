"""Time of the Green's matrix and of the inversion for the medium case (`mmt_scale.py`'s
preset medium): a synthetic 200 × 200 × 50 µm sample at 1e5 grains/mm³, 1 µm sampling
(201 × 201 point sensors, 1 µm above the sample top). Compares with the public library
`mmt_dipole_cuboid_inversion`, which needs about 0.5 µs per (sensor, cuboid) pair on 2 cores
and holds Q whole.

    python benchmarks/mmt_green.py [--side-um 200 --thickness-um 50 --density 1e5]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver.inversion import (
    DEFAULT_BLOCK,
    accumulate,
    sensor_positions,
    solve_triangle,
)

UM = 1e-6
LIBRARY_S_PER_PAIR = 0.5e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side-um", type=float, default=200.0)
    parser.add_argument("--thickness-um", type=float, default=50.0)
    parser.add_argument("--density", type=float, default=1e5)
    args = parser.parse_args()
    rng = np.random.default_rng(2)
    sample = synth.make_sample((args.side_um * UM,) * 2, args.thickness_um * UM, args.density,
                               rng)
    height = 1 * UM
    data = synth.scan(sample, height=height, step=1 * UM, sensor_size=(0, 0), noise=5e-9,
                      rng=rng)
    g = sample.grains
    sensors, keep = sensor_positions(data, height)
    phi = data.bz.ravel()[keep]
    P, C, n = sensors.shape[0], g.cuboids.shape[0], 3 * g.n_grains
    print(f"{g.n_grains} grains, {C} cuboids, {P} sensors; cores {os.cpu_count()}")
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(g, (0, 0), lo, hi, height)
    model.block(sensors[:8])  # compile outside the timing
    t = time.perf_counter()
    buf = np.empty((DEFAULT_BLOCK, n))
    for s in range(0, P, DEFAULT_BLOCK):
        model.block(sensors[s:s + DEFAULT_BLOCK], buf[: min(DEFAULT_BLOCK, P - s)])
    t_green = time.perf_counter() - t
    t = time.perf_counter()
    tri, _ = accumulate(model, sensors, phi)
    t_qr = time.perf_counter() - t
    t = time.perf_counter()
    solve_triangle(tri)
    t_solve = time.perf_counter() - t
    d2 = ((sensors[::97, None, :] - model.centroid[None]) ** 2).sum(-1)
    far = float(np.mean(d2 >= model.far2[None]))
    higher = float(np.mean((d2 >= model.far2[None]) & (d2 < model.coarse2[None])))
    near = d2 < model.far2[None]
    per_sensor = float(np.mean(near @ np.diff(g.start)))
    library = LIBRARY_S_PER_PAIR * P * C
    print(f"Green's matrix (all {P} × {n} entries, in blocks)   {t_green:8.2f} s"
          f"  = {t_green / (P * C) * 1e9:.1f} ns per (sensor, cuboid) pair;"
          f" {100 * far:.0f} % of (sensor, grain) pairs by the grain's far field"
          f" ({100 * higher:.0f} % at orders 4 to 8), {per_sensor:.0f} cuboid terms per sensor")
    print(f"Green's matrix + QR of [Q | φ] (QRUpdate)       {t_qr:8.2f} s")
    print(f"solve (triangular, covariance blocks, cond)     {t_solve:8.2f} s")
    print(f"inversion total                                 {t_qr + t_solve:8.2f} s")
    print(f"public library estimate (0.5 µs × pairs)        {library:8.2f} s;"
          f" Q alone {P * n * 8 / 2**30:.2f} GiB held whole")
    print(f"speed-up on the Green's matrix {library / t_green:.3g}×, on the whole inversion "
          f"{library / (t_qr + t_solve):.3g}×")
    print(f"peak memory (max RSS) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MB")


if __name__ == "__main__":
    main()
