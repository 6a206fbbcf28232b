"""Times a tiled MMT inversion on a local Dask cluster and prints time and peak memory.

A synthetic sample from `mmt_study_reduced.cube_sample` (seed 001's placement and
magnetization law, cube grains), its map on a grid with noise, inverted in tiles; prints each
stage's (pass's) wall time from its first to its last task, the total, and the peak RSS of the
workers and of this process. With --compare also inverted whole, with the rms and largest
difference in standard deviations and the largest SD ratio.

    python benchmarks/mmt_tiled.py [--size-um 300] [--thickness-um 20] [--density 50000]
        [--step-um 2] [--tile-um 100] [--workers 2] [--compare]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from mmt_study_reduced import cube_sample

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.mmt.solver.inversion import invert_map
from smm_daq.analysis.mmt.study.grid import SampleSpec
from smm_daq.analysis.mmt.tiles.cluster import open_client, stderr_progress
from smm_daq.analysis.mmt.tiles.tiled import invert_tiled
from smm_daq.storage.mapdata import MapData

UM = 1e-6
HEIGHT = 1 * UM
SENSOR = (1 * UM, 1 * UM)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageClock:
    """A progress callback that records each stage's wall time (first report to last)."""

    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.start.setdefault(stage, now)
        if done == total:
            self.seconds[stage] = now - self.start[stage]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-um", type=float, default=300.0)
    ap.add_argument("--thickness-um", type=float, default=20.0)
    ap.add_argument("--density", type=float, default=50e3, help="grains per mm³")
    ap.add_argument("--step-um", type=int, default=2)
    ap.add_argument("--noise-nT", type=float, default=20.0)
    ap.add_argument("--tile-um", type=float, default=100.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compare", action="store_true", help="also invert whole and compare")
    a = ap.parse_args()
    spec = SampleSpec(a.size_um, a.thickness_um, a.density, 0, 7)
    rng = spec.rng()
    grains, m = cube_sample(spec, rng)
    x = np.arange(0.0, a.size_um + 1e-9, a.step_um) * UM
    X, Y = np.meshgrid(x, x)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    sigma = a.noise_nT * 1e-9
    bz = cuboid_bz(sensors, grains.cuboids, m[grains.grain], sensor_size=SENSOR)
    data = MapData(bz=bz.reshape(X.shape) + rng.normal(0, sigma, X.shape), x=x, y=x,
                   height=HEIGHT, sensor_size=SENSOR, name="bench")
    print(f"{grains.n_grains} grains, {X.size} sensors, tiles of {a.tile_um:g} µm, "
          f"{a.workers} workers")
    with open_client(n_workers=a.workers) as client:
        clock = StageClock()
        printer = stderr_progress()

        def progress(stage: str, done: int, total: int) -> None:
            clock(stage, done, total)
            printer(stage, done, total)

        t0 = time.perf_counter()
        tiled = invert_tiled(data, grains, tile=a.tile_um * UM, height=HEIGHT,
                             sensor_size=SENSOR, sigma=sigma, client=client,
                             progress=progress, info=lambda s: print(s, flush=True))
        wall = time.perf_counter() - t0
        workers = client.run(_peak_rss_mb)
    for stage, seconds in clock.seconds.items():
        print(f"  {stage}: {seconds:.2f} s")
    print(f"tiled inversion: {wall:.1f} s wall; peak RSS per worker (MB): "
          + ", ".join(f"{v:.0f}" for v in workers.values())
          + f"; client process {_peak_rss_mb():.0f} MB")
    if a.compare:
        t0 = time.perf_counter()
        whole = invert_map(data, grains, height=HEIGHT, sensor_size=SENSOR, sigma=sigma)
        z = (tiled.magnetization - whole.magnetization) / whole.sd
        ratio = tiled.sd / whole.sd
        print(f"whole inversion: {time.perf_counter() - t0:.1f} s; tiled − whole: rms "
              f"{np.sqrt(np.mean(z**2)):.3f} σ, max {np.max(np.abs(z)):.3f} σ; SD ratio "
              f"{ratio.min():.3f}..{ratio.max():.3f}; client peak RSS {_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
