"""How well `--crop-to-scan`'s noise rule (`dragonfly.largest_field` against a tenth of σ) bounds
what a dropped grain does, by three independent estimates; it prints figures, asserts nothing.

    .venv/bin/python benchmarks/crop_noise_rule.py [--samples 3]

1. Shapes: each of the MMT tutorial's largest micro-CT grains (tests/data/mmt-tutorial-qdm,
   unions of cuboids) is moved beyond a scan's edge to where the rule's bound for its centroid
   and volume is exactly a tenth of σ; its exact field (choclo's prisms, magnetized to
   saturation, the largest over directions, averaged over the sensor by Gauss-Legendre) is
   then taken over the edge sensors: the ratio to a tenth of σ says how far a real shape
   exceeds the point dipole's bound where the rule decides.
2. Uniform samples: seed 001's synthetic samples (point grains, `synth_points`) larger than
   an 80 µm window; the grains the rule keeps at several thresholds are fitted (σ known) to
   the field of all grains and to that of the kept ones alone, with the same noise; the
   difference of each kept grain's M over its SD is the bias the dropped grains cause (the
   many kept grains beyond the window, which the scan hardly resolves, take up the dropped
   ones' smooth field).
3. The worst case: only the grains under the window, and one grain at the threshold,
   saturated, its moment in the worst direction; the bias it causes in SDs, for two pixel
   counts (it grows as the square root of the scan's pixels: its field is nearly uniform
   over the scan, and the rule bounds it at one pixel).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
from choclo.prism import magnetic_u
from scipy.optimize import brentq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smm_daq.analysis.mmt.formats.dragonfly import (
    CROP_FRACTION,
    CROP_MAGNETIZATION,
    largest_field,
)
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.analysis.mmt.synth_points import make_point_sample
from smm_daq.storage.mapdata import MapData

UM, NT = 1e-6, 1e-9
TUTORIAL = Path(__file__).resolve().parents[1] / "tests/data/mmt-tutorial-qdm"


@numba.njit(cache=False)
def _unit_fields(px: np.ndarray, py: np.ndarray, pz: np.ndarray, boxes: np.ndarray
                 ) -> np.ndarray:
    """Bz (T) of the prisms `boxes` (west, east, south, north, bottom, top) magnetized 1 A/m
    along x, y and z, at each point."""
    out = np.zeros((px.size, 3))
    for i in range(px.size):
        for b in range(boxes.shape[0]):
            w, e, s, n, lo, hi = boxes[b]
            out[i, 0] += magnetic_u(px[i], py[i], pz[i], w, e, s, n, lo, hi, 1.0, 0.0, 0.0)
            out[i, 1] += magnetic_u(px[i], py[i], pz[i], w, e, s, n, lo, hi, 0.0, 1.0, 0.0)
            out[i, 2] += magnetic_u(px[i], py[i], pz[i], w, e, s, n, lo, hi, 0.0, 0.0, 1.0)
    return out


def _sensor_reading(boxes: np.ndarray, x: np.ndarray, y: np.ndarray, height: float,
                    width: float) -> float:
    """The largest reading over the sensors centred at (x, y), a width × width area each."""
    nodes, weights = np.polynomial.legendre.leggauss(4)
    acc = np.zeros((x.size, 3))
    for ax, a in zip(nodes * width / 2, weights / 2, strict=True):
        for by, b in zip(nodes * width / 2, weights / 2, strict=True):
            acc += a * b * _unit_fields(x + ax, y + by, np.full(x.size, height), boxes)
    return float(np.max(np.linalg.norm(acc, axis=1)) * CROP_MAGNETIZATION)


def shapes() -> None:
    cuboids = np.loadtxt(TUTORIAL / "class_cuboid_result2.txt") * UM
    labels = np.rint(cuboids[:, 6] / UM).astype(int)
    grains = []
    for g in np.unique(labels):
        x, y, depth, hx, hy, hz = cuboids[labels == g, :6].T
        v = 8 * hx * hy * hz
        boxes = np.stack([x - hx, x + hx, y - hy, y + hy, -depth - hz, -depth + hz], 1)
        grains.append((v.sum(), g, boxes, np.array([x @ v, y @ v, -depth @ v]) / v.sum()))
    grains.sort(key=lambda t: -t[0])
    window = (0.0, 1e-3, 0.0, 1e-3)
    print("1. tutorial grains at the threshold distance beyond the edge: the exact reading "
          "over a tenth of σ")
    for height, width, sigma in ((6 * UM, 1.2 * UM, 400 * NT), (100 * UM, 30 * UM, 250 * NT)):
        ratios = []
        for vol, _, boxes, centre in grains[:6]:
            def excess(d: float, vol: float = vol, z: float = centre[2],
                       height: float = height, sigma: float = sigma) -> float:
                pos = np.array([[window[1] + d, 0.5e-3, z]])
                return largest_field(pos, np.array([vol]), window, height)[0] \
                    - CROP_FRACTION * sigma
            d = brentq(excess, 0.0, 0.1)
            moved = boxes.copy()
            moved[:, 0:2] += window[1] + d - centre[0]
            moved[:, 2:4] += 0.5e-3 - centre[1]
            ys = 0.5e-3 + np.linspace(-0.5, 0.5, 41) * d
            reading = _sensor_reading(moved, np.full(ys.size, window[1]), ys, height, width)
            ratios.append(reading / (CROP_FRACTION * sigma))
        print(f"   height {height / UM:g} µm, sensor {width / UM:g} µm, σ {sigma / NT:g} nT, "
              f"the 6 largest grains ({grains[5][0] / UM**3:.0f} to {grains[0][0] / UM**3:.0f} "
              f"µm³): {min(ratios):.4f} to {max(ratios):.4f}")


def _invert(bz: np.ndarray, sensors: np.ndarray, grains: object, sigma: float) -> object:
    """The product's joint inversion (dipoles, σ known) of a square scan's Bz."""
    xs = np.unique(sensors[:, 0])
    scan = MapData(bz=bz.reshape(xs.size, xs.size), x=xs, y=np.unique(sensors[:, 1]),
                   height=float(sensors[0, 2]), name="synthetic")
    return invert_scans([Scan(scan, float(sensors[0, 2]), (0.0, 0.0), sigma)], grains,
                        model="dipole")


def _fit(q: np.ndarray, b: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of Q and its SDs (σ known)."""
    m, *_ = np.linalg.lstsq(q, b, rcond=None)
    return m, sigma * np.sqrt(np.diag(np.linalg.pinv(q.T @ q)))


def _sensors(window: float, step: float, height: float, x0: float = 0.0) -> np.ndarray:
    xs = x0 + np.arange(0.0, window + step / 2, step)
    xx, yy = np.meshgrid(xs, xs)
    return np.c_[xx.ravel(), yy.ravel(), np.full(xx.size, height)]


def _columns(pos: np.ndarray, vol: np.ndarray, sensors: np.ndarray) -> np.ndarray:
    model = MultipoleModel.build(point_grains(pos, vol, source="benchmark"), Sensor(), "dipole")
    return model.block(sensors, np.empty((sensors.shape[0], model.n_columns)))


def uniform(samples: int) -> None:
    side, window, step, height, sigma = 600 * UM, 80 * UM, 2 * UM, 5 * UM, 100 * NT
    print(f"2. uniform samples ({side / UM:g} µm square, 15 µm thick, 3e4/mm³; an "
          f"{window / UM:g} µm window at {step / UM:g} µm, {height / UM:g} µm high, σ "
          f"{sigma / NT:g} nT; {samples} samples): |bias| / SD of the kept grains")
    for fraction in (0.1, 1.0, 10.0):
        biases, kept, dropped = [], [], []
        for seed in range(samples):
            rng = np.random.default_rng(seed)
            s = make_point_sample((side, side), 15 * UM, 3e4, rng)
            sensors = _sensors(window, step, height, side / 2 - window / 2)
            lo, hi = sensors[0, 0], sensors[-1, 0]
            pos, vol, m = s.grains.positions, s.grains.volume, s.coefficients
            keep = largest_field(pos, vol, (lo, hi, lo, hi), height) >= fraction * sigma
            far = _columns(pos[~keep], vol[~keep], sensors) @ m[~keep].ravel()
            noise = sigma * rng.standard_normal(sensors.shape[0])
            near = _columns(pos[keep], vol[keep], sensors) @ m[keep].ravel() + noise
            kept_grains = point_grains(pos[keep], vol[keep], source="kept")
            with_far = _invert(near + far, sensors, kept_grains, sigma)
            alone = _invert(near, sensors, kept_grains, sigma)
            biases.append(np.abs(with_far.magnetization - alone.magnetization) / alone.sd)
            kept.append(keep.sum())
            dropped.append(np.abs(far).max() / sigma)
        b = np.concatenate(biases)
        print(f"   threshold {fraction:g} σ: {np.mean(kept):.0f} grains kept; the dropped "
              f"ones' field at most {max(dropped):.2g} σ; |bias| / SD median {np.median(b):.2g}"
              f", max {b.max():.2g}")


def _excess(d: float, vol: float, window: tuple[float, float, float, float], height: float,
            sigma: float) -> float:
    """The rule's bound over a tenth of σ, less 1, for a grain 5 µm deep, `d` beyond x1."""
    pos = np.array([[window[1] + d, (window[2] + window[3]) / 2, -5 * UM]])
    return largest_field(pos, np.array([vol]), window, height)[0] - CROP_FRACTION * sigma


def worst(samples: int) -> None:
    window, height, sigma, vol = 80 * UM, 5 * UM, 100 * NT, 1 * UM**3
    print(f"3. the worst case: the grains under an {window / UM:g} µm window only, {height / UM:g}"
          f" µm high, σ {sigma / NT:g} nT, and one {vol / UM**3:g} µm³ grain 5 µm deep at "
          "the threshold distance, saturated, in the worst direction")
    for step in (2 * UM, 1 * UM):
        sensors = _sensors(window, step, height)
        lo, hi = sensors[0, 0], sensors[-1, 0]
        out = []
        for seed in range(samples):
            s = make_point_sample((window, window), 15 * UM, 3e5, np.random.default_rng(seed))
            q = _columns(s.grains.positions, s.grains.volume, sensors)
            d = brentq(_excess, 0.0, 1.0, args=(vol, (lo, hi, lo, hi), height, sigma))
            g = _columns(np.array([[hi + d, window / 2, -5 * UM]]), np.array([vol]), sensors)
            nearest = np.argmin((sensors[:, 0] - hi) ** 2 + (sensors[:, 1] - window / 2) ** 2)
            field = g @ (CROP_MAGNETIZATION * g[nearest] / np.linalg.norm(g[nearest]))
            bias, sd = _fit(q, field, sigma)
            out.append(np.max(np.abs(bias) / sd))
        print(f"   {sensors.shape[0]} pixels (step {step / UM:g} µm): the grain {d / UM:.0f} µm "
              f"beyond the edge, |field| {np.linalg.norm(field) / sigma:.3g} σ over the scan; "
              f"largest |bias| / SD of a kept grain {max(out):.2g}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=3)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    shapes()
    uniform(args.samples)
    worst(args.samples)


if __name__ == "__main__":
    main()
