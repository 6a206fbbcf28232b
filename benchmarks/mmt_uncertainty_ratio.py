"""The per-grain statistics of an MMT result at the lab's scale (4,300 grains a scan) and ten
times it: the 95 % sphere radius behind the uncertainty ratio (seed 001 eq. 12) now and as it
was computed before (a Newton iteration from the bracket's middle on the 24 × 24 rule, NumPy
over (G, 576) per step, copied below), how far the two lie apart, and the whole result
table's build (`MMTResult.table`: directions, SSR, ratio and the rest):

    python benchmarks/mmt_uncertainty_ratio.py [--grains 4300,43000] [--repeat 2]

Prints the minimum wall time of each (the first call, numba's compile or cache load, apart)
and the load average beside them. The covariances are random 3 × 3 A Aᵀ with columns scaled
by 10^U(-6, 0), so their condition numbers span 1 to 1e12.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from scipy import special

from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt.solver import stats
from smm_daq.analysis.mmt.solver.inversion import MMTResult
from smm_daq.storage.mapdata import MapData

UM = 1e-6


def _radius_before(cov: np.ndarray) -> np.ndarray:
    """The radius as computed before: safeguarded Newton from the middle of [χ²₁, χ²₃] on
    the 24 × 24 octant rule, all active grains at once in NumPy."""
    lam = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    top = lam.max(axis=1)
    norm = lam / top[:, None]
    lo = np.full(norm.shape[0], stats.CHI2_1_95)
    hi = np.full(norm.shape[0], stats.CHI2_3_95)
    x = 0.5 * (lo + hi)
    active = np.arange(norm.shape[0])
    for _ in range(100):
        g = norm[active] @ stats._OMEGA2.T
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            t = x[active][:, None] / g
            root, e = np.sqrt(0.5 * t), np.exp(-0.5 * t)
            cdf = special.erf(root) - np.sqrt(2.0 * t / math.pi) * e
            pdf = np.sqrt(t / (2.0 * math.pi)) * e
            f = np.where(g > 0, cdf, 1.0) @ stats._OMEGA_W - 0.95
            df = np.where(g > 0, pdf / g, 0.0) @ stats._OMEGA_W
            xa, la, ha = x[active], lo[active], hi[active]
            la = np.where(f < 0, xa, la)
            ha = np.where(f >= 0, xa, ha)
            step = xa - f / df
        new = np.where((step > la) & (step < ha), step, 0.5 * (la + ha))
        x[active], lo[active], hi[active] = new, la, ha
        active = active[np.abs(new - xa) > 1e-12 * xa]
        if active.size == 0:
            break
    return np.sqrt(x * top)


def _covariances(n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(n, 3, 3)) * 10 ** rng.uniform(-6, 0, size=(n, 1, 3))
    return a @ a.transpose(0, 2, 1)


def _result(cov: np.ndarray, rng: np.random.Generator) -> MMTResult:
    n = cov.shape[0]
    centres = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 500, n),
                               rng.uniform(-75, -2, n)]) * UM
    grains = from_arrays(np.column_stack([centres, np.full((n, 3), 2 * UM)]),
                         np.arange(1, n + 1))
    x = y = np.arange(0, 100.1, 2.5) * UM
    fitted = MapData(bz=np.zeros((y.size, x.size)), x=x, y=y, height=100 * UM,
                     sensor_size=(0.0, 0.0), name="scan")
    return MMTResult(grains=grains, magnetization=rng.normal(0, 1e3, (n, 3)), covariance=cov,
                     sigma=1e-9, sigma_from_residual=False, fitted=fitted, residual=fitted,
                     condition_number=1e3, n_sensors=fitted.bz.size, damping=0.0,
                     height=100 * UM)


def _best(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grains", default="4300,43000")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    stats.sphere_radius_95(np.eye(3))
    print(f"first call (numba compile or cache load): {time.perf_counter() - t0:.2f} s")
    for n in (int(g) for g in args.grains.split(",")):
        cov = _covariances(n, rng)
        result = _result(cov, rng)
        now, before = stats.sphere_radius_95(cov), _radius_before(cov)
        t_now = _best(lambda c=cov: stats.sphere_radius_95(c), args.repeat)
        t_before = _best(lambda c=cov: _radius_before(c), args.repeat)
        t_table = _best(result.table, args.repeat)
        print(f"{n:>7,} grains: radius {t_now:.3f} s (before {t_before:.3f} s, "
              f"{t_before / t_now:.1f}x), largest relative difference "
              f"{np.max(np.abs(now / before - 1)):.1e}; table {t_table:.3f} s; "
              f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
