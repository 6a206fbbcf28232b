"""Time the susceptibility inversion of a 501 × 501 induced map (goal: < 10 s on 2 cores).

A synthetic thin section (grains of χ 0.5–3 SI in a 5 mm square, 30 µm thick, 10 µm pixels)
in a 40 µT field tilted out of the plane, seen at 100 µm by a 30 µm sensor, plus 0.25 µT of
noise; the map is made with the layer's own transfer function on a padded grid (the timing,
not the physics, is what this measures; the tests check the physics against the closed form).
Prints the time of each criterion and of a fixed λ, the CG iterations and the recovery error.

    python benchmarks/susceptibility.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from smm_daq.analysis.susceptibility import MU0, invert_susceptibility, layer_transfer
from smm_daq.storage.mapdata import MapData

N = 501
STEP = 10e-6
HEIGHT = 100e-6
THICKNESS = 30e-6
SENSOR = (30e-6, 30e-6)
FIELD = np.array([0.0, 40e-6, 10e-6])
NOISE = 0.25e-6


def synthetic_map(rng: np.random.Generator) -> tuple[MapData, np.ndarray]:
    px, py = np.meshgrid(np.arange(N), np.arange(N))
    chi = np.zeros((N, N))
    for _ in range(150):
        cx, cy = rng.uniform(20, N - 20, 2)
        chi[(px - cx) ** 2 + (py - cy) ** 2 < rng.uniform(3, 12) ** 2] = rng.uniform(0.5, 3.0)
    big = 2 * N
    padded = np.zeros((big, big))
    padded[:N, :N] = chi * np.linalg.norm(FIELD) / MU0
    transfer = layer_transfer((big, big), (STEP, STEP), FIELD / np.linalg.norm(FIELD),
                              height=HEIGHT, thickness=THICKNESS, sensor_size=SENSOR)
    bz = np.fft.irfft2(np.fft.rfft2(padded) * transfer, s=(big, big))[:N, :N]
    bz += rng.normal(size=bz.shape) * NOISE
    x = np.arange(N) * STEP
    m = MapData(bz, x, x, height=HEIGHT, sensor_size=SENSOR, applied_field=FIELD, name="bench")
    return m, chi


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help; no options
    m, chi = synthetic_map(np.random.default_rng(0))
    print(f"map {m.shape[0]} × {m.shape[1]}, step {STEP * 1e6:g} µm, height {HEIGHT * 1e6:g} µm")
    runs = [("discrepancy", {"noise": NOISE}), ("gcv", {}), ("fixed λ", {})]
    fixed = None
    for label, options in runs:
        if label == "fixed λ":
            options = {"noise": NOISE, "regularization": fixed}
        start = time.perf_counter()
        inv = invert_susceptibility(m, THICKNESS, **options)
        elapsed = time.perf_counter() - start
        fixed = fixed or inv.regularization
        rms = float(np.sqrt(np.mean((inv.values - chi) ** 2)))
        print(f"{label:12s} {elapsed:6.2f} s  {inv.iterations:4d} CG iterations"
              f"{'' if inv.converged else ' (not converged)'}  σ {inv.noise * 1e9:.0f} nT  "
              f"χ error RMS {rms:.3f} SI  median SD {np.median(inv.sd):.3f} SI")


if __name__ == "__main__":
    main()
