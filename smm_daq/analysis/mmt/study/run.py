"""Seed 001's parameter study on Dask: one task per synthetic sample, statistics per model.

A task draws its sample (grains and magnetizations, by the seed's §2.1 model), computes the
noiseless Bz on the 1 µm grid, and for each noise level adds one noise draw to that grid and
inverts it sub-sampled at each interval (the seed's scheme: every interval sees the same noisy
map), keeping each grain's uncertainty ratio and SSR. The results of all repeats of a model are
pooled into its row (`study.stats.model_statistics`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.solver.inversion import invert_map
from smm_daq.analysis.mmt.study.grid import (
    BASE_INTERVAL_UM,
    SampleSpec,
    StudySpec,
    base_points,
    subsample_index,
)
from smm_daq.analysis.mmt.study.plots import plot_ssr_resolved, plot_uncertainty_boxes
from smm_daq.analysis.mmt.study.stats import model_statistics, write_csv
from smm_daq.analysis.mmt.tiles.cluster import Progress, run_tasks
from smm_daq.storage.mapdata import MapData

UM = 1e-6

# (sample, rng) -> (grains, magnetization (G, 3) A/m) inside the sample's volume
SampleMaker = Callable[[SampleSpec, np.random.Generator], tuple[GrainSet, np.ndarray]]


def run_sample(sample: SampleSpec, spec: StudySpec, make: SampleMaker
               ) -> dict[tuple[int, float], tuple[np.ndarray, np.ndarray]]:
    """{(interval_um, noise_nT): (UR %, SSR) per grain} for one synthetic sample."""
    rng = sample.rng()
    grains, magnetization = make(sample, rng)
    height = spec.height_um * UM
    sensor_size = (spec.sensor_um * UM, spec.sensor_um * UM)
    axis = np.arange(base_points(sample.surface_um)) * (BASE_INTERVAL_UM * UM)
    X, Y = np.meshgrid(axis, axis)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    clean = cuboid_bz(sensors, grains.cuboids, magnetization[grains.grain],
                      sensor_size=sensor_size).reshape(X.shape)
    out = {}
    for noise in spec.noise_nT:
        noisy = clean + rng.normal(0.0, noise * 1e-9, clean.shape)
        for interval in spec.intervals_um:
            keep = subsample_index(axis.size, interval)
            data = MapData(bz=noisy[np.ix_(keep, keep)], x=axis[keep], y=axis[keep],
                           height=height, sensor_size=sensor_size, name="study")
            # CPU: many workers share a machine, and a GPU solve sizes itself for one process;
            # one stream, as the study's budget counts (its workers are its parallelism)
            result = invert_map(data, grains, height=height, sensor_size=sensor_size,
                                sigma=noise * 1e-9, device="cpu", streams=1)
            table = result.table()
            out[(interval, noise)] = (table["uncertainty_ratio_pct"], table["ssr_per_um"])
    return out


def aggregate(spec: StudySpec, samples: list[SampleSpec],
              results: list[dict[tuple[int, float], tuple[np.ndarray, np.ndarray]]]
              ) -> list[dict[str, float]]:
    """One row per model: its parameters, runs, and the pooled statistics."""
    rows = []
    for surface, thickness, density, interval, noise in spec.models():
        runs = [r[(interval, noise)] for s, r in zip(samples, results, strict=True)
                if (s.surface_um, s.thickness_um, s.density_per_mm3)
                == (surface, thickness, density)]
        ur = np.concatenate([u for u, _ in runs]) if runs else np.zeros(0)
        ssr = np.concatenate([s for _, s in runs]) if runs else np.zeros(0)
        rows.append({"surface_um": surface, "thickness_um": thickness,
                     "density_per_mm3": density, "interval_um": float(interval),
                     "noise_nT": noise, "runs": float(len(runs)),
                     **model_statistics(ur, ssr)})
    return rows


def run_study(spec: StudySpec, out: Path, *, make: SampleMaker, client: object | None = None,
              progress: Progress | None = None) -> dict[str, Path]:
    """Run every sample of `spec` on the Dask `client` (here when None); write study.csv,
    study.json and the two figures into `out`; returns their paths."""
    samples = spec.samples()
    results = run_tasks(client, run_sample,  # type: ignore[arg-type]
                        [(s, spec, make) for s in samples], stage="study samples",
                        progress=progress)
    rows = aggregate(spec, samples, results)
    paths = {"csv": out / "study.csv", "json": out / "study.json",
             "figure4": out / "uncertainty_ratio.png", "figure5": out / "ssr_resolved.png"}
    write_csv(paths["csv"], rows)
    settings = {"surfaces_um": spec.surfaces_um, "thicknesses_um": spec.thicknesses_um,
                "densities_per_mm3": spec.densities_per_mm3, "intervals_um": spec.intervals_um,
                "noise_nT": spec.noise_nT, "repeats": spec.repeats, "seed": spec.seed,
                "height_um": spec.height_um, "sensor_size_um": [spec.sensor_um] * 2,
                "directions": spec.directions}
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump({"settings": settings,
                   "models": [{k: (v if math.isfinite(v) else None) for k, v in r.items()}
                              for r in rows]},
                  f, indent=1)
    plot_uncertainty_boxes(rows, paths["figure4"])
    plot_ssr_resolved(rows, paths["figure5"])
    return paths
