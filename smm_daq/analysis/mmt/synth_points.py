"""Synthetic point-source samples: grains as points with volumes, dipoles drawn as in `synth`
(|M| = M0 (V/V0)^α × 10^N(0, 0.5²), a random direction as `synth.draw_directions` draws it)
and, for multipole models, quadrupole and octupole coefficients of a grain of radius a drawn
as N(0, (0.3 |M| V a^(l−1))²) each: a magnetization that varies by tens of per cent across the
grain."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.multipole import (
    MODELS,
    MultipoleModel,
    PointGrains,
    Sensor,
    point_grains,
)
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.storage.mapdata import MapData

UM = 1e-6
HIGHER_SPREAD = 0.3


@dataclass(frozen=True)
class PointSample:
    grains: PointGrains
    coefficients: np.ndarray  # (G, k): M (A/m), then A m³, A m⁴
    model: str
    size: tuple[float, float]
    thickness: float


def make_point_sample(size: tuple[float, float], thickness: float, density_per_mm3: float,
                      rng: np.random.Generator, model: str = "dipole",
                      directions: str = synth.DIRECTION_DRAWS[0]) -> PointSample:
    """Points at `density_per_mm3` in [0, size_x] × [0, size_y] × [−thickness, 0], each at
    least its radius below the top and at least the sum of radii from every other."""
    k = MODELS[model]
    n_grains = max(1, round(density_per_mm3 * size[0] * size[1] * thickness / 1e-9))
    pos = np.empty((0, 3))
    radius = np.empty(0)
    attempts = 0
    while pos.shape[0] < n_grains and attempts < 100 * n_grains:
        attempts += 1
        a = 0.5 * synth._diameter(rng)
        if 2 * a >= thickness:
            continue
        p = np.array([rng.uniform(0, size[0]), rng.uniform(0, size[1]),
                      rng.uniform(-thickness + a, -a)])
        if pos.shape[0] and np.any(np.linalg.norm(pos - p, axis=1) < radius + a):
            continue
        pos = np.vstack([pos, p])
        radius = np.append(radius, a)
    vol = 4.0 / 3.0 * math.pi * radius**3
    strength = synth.M0 * (vol / synth.V0) ** synth.ALPHA * 10 ** rng.normal(
        0.0, synth.LOG_SPREAD, vol.size)
    direction = synth.draw_directions(rng, vol.size, directions)
    coef = np.zeros((vol.size, k))
    coef[:, :3] = strength[:, None] * direction
    for j in range(3, k):
        order = 2 if j < 8 else 3
        coef[:, j] = rng.normal(0.0, HIGHER_SPREAD, vol.size) * strength * vol \
            * radius ** (order - 1)
    grains = point_grains(pos, vol, source="synthetic")
    return PointSample(grains, coef, model, size, thickness)


def scan_points(sample: PointSample, *, height: float, step: float,
                sensor_size: tuple[float, ...], noise: float, rng: np.random.Generator,
                name: str = "synthetic", device: str = "cpu") -> MapData:
    """Bz over the sample on a grid of `step` at `height`, Gaussian noise of SD `noise` (T);
    the field computed on `device` (`solver.device`)."""
    x = np.arange(0.0, sample.size[0] + 0.5 * step, step)
    y = np.arange(0.0, sample.size[1] + 0.5 * step, step)
    X, Y = np.meshgrid(x, y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    model = MultipoleModel.build(sample.grains, Sensor.from_size(sensor_size), sample.model)
    if devices.resolve(device) == "gpu":
        bz = devices.gpu_solver().forward(model, sensors, sample.coefficients)
    else:
        bz = forward(model, sensors, sample.coefficients)
    bz = bz + noise * rng.standard_normal(bz.size)
    return MapData(bz=bz.reshape(y.size, x.size), x=x, y=y, height=height,
                   sensor_size=(float(sensor_size[0]), float(sensor_size[1])), name=name,
                   title=f"synthetic point-source scan ({sample.model}), noise "
                         f"{noise / 1e-9:g} nT")
