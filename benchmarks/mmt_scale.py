"""MMT at scale on one machine (issue 7): a synthetic sample of seed 001 from sample to
inversion with full uncertainties; prints the time of each stage and the peak memory.

    python benchmarks/mmt_scale.py --preset paper-largest   # 500 × 500 × 75 µm, 1e5 /mm³
    python benchmarks/mmt_scale.py --preset small            # quick

Point sensors 1 µm above the sample top, 1 µm sampling, 5 nT noise. Peak memory is the
process's maximum resident set size (ru_maxrss), which includes numba's and BLAS's buffers.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.solver.inversion import invert_map

UM = 1e-6
PRESETS = {  # surface side µm, thickness µm, grains per mm³
    "small": (100.0, 30.0, 1e5),
    "medium": (200.0, 50.0, 1e5),
    "large": (300.0, 75.0, 1e5),
    "paper-largest": (500.0, 75.0, 1e5),
}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="small")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    side, thickness, density = PRESETS[args.preset]
    height, step, noise = 1 * UM, 1 * UM, 5e-9
    rng = np.random.default_rng(args.seed)
    print(f"preset {args.preset}: {side:g} × {side:g} × {thickness:g} µm, {density:g} grains/mm³,"
          f" step 1 µm, height 1 µm, point sensor, noise 5 nT; cores {os.cpu_count()}")
    t = time.perf_counter()
    sample = synth.make_sample((side * UM, side * UM), thickness * UM, density, rng)
    stages = {"synthetic sample": time.perf_counter() - t}
    print(f"synthetic sample {stages['synthetic sample']:.1f} s", flush=True)
    g = sample.grains
    t = time.perf_counter()
    data = synth.scan(sample, height=height, step=step, sensor_size=(0, 0), noise=noise, rng=rng)
    stages["forward scan (truth + noise)"] = time.perf_counter() - t
    print(f"{g.n_grains} grains, {g.cuboids.shape[0]} cuboids, {data.bz.size} sensors; forward "
          f"scan {stages['forward scan (truth + noise)']:.1f} s, peak {peak_mb():.0f} MB",
          flush=True)
    t = time.perf_counter()
    result = invert_map(data, g, height=height, sensor_size=(0, 0), sigma=noise)
    stages["inversion total"] = time.perf_counter() - t
    for key, value in result.timings.items():
        if key != "total_s":
            stages[f"  {key[:-2].replace('_', ' ')}"] = value
    t = time.perf_counter()
    table = result.table()
    stages["per-grain statistics (UR, SSR, directions)"] = time.perf_counter() - t
    total = sum(v for k, v in stages.items() if not k.startswith("  "))
    for key, value in stages.items():
        print(f"{key:46s} {value:9.1f} s")
    print(f"{'total':46s} {total:9.1f} s")
    print(f"peak memory (max RSS)                          {peak_mb():9.0f} MB")
    ur = table["uncertainty_ratio_pct"]
    err = np.linalg.norm(result.magnetization - sample.magnetization, axis=1)
    inside = err <= ur / 100 * np.linalg.norm(result.magnetization, axis=1)
    finite = np.isfinite(ur)
    q1, q2, q3 = np.percentile(ur[finite], [25, 50, 75]) if finite.any() else (np.nan,) * 3
    print(f"cond(Q) {result.condition_number:.3g} (1-norm estimate); uncertainty ratio quartiles "
          f"{q1:.3g} / {q2:.3g} / {q3:.3g} %; {int(np.sum(~finite))} grains unresolved; "
          f"true M inside the 95 % sphere for {100 * np.mean(inside):.1f} % of grains")


if __name__ == "__main__":
    main()
