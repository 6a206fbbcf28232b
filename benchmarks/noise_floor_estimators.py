"""How far single-map noise floors are from the noise they estimate, and how often `info` calls
one an upper bound; it prints figures, asserts nothing.

    .venv/bin/python benchmarks/noise_floor_estimators.py [--samples 3] [--draws 6]

Noiseless maps of seed 001's synthetic samples (`mmt synth`'s, point sensors): 60 µm at
10⁵ grains/mm³ 10 µm thick, the sensor 0.5 to 5 µm above, 2 and 1 µm steps (the dense maps
whose field bends at the pixel scale); 200 µm at 10⁴ grains/mm³ at 4 µm steps, 0.5 to 20 µm
above (sparse ones); and white noise alone. Gaussian noise of known σ (1, 5, 25 nT) is added,
`--draws` times per map, and each estimator's floor over σ is printed (median and range over
samples and draws): the 6th differences along the lines that `info` uses, along the columns,
the lower of the two, the median of the pixelwise lower of the two axes' 6th differences
(scaled to white noise by a constant measured here), the lower quartile of both axes' 6th
differences, the 10th differences along the lines, and the 2D 6th differences (along and
across the lines); then how often
`noise.bends_at_pixel_scale` flags the map, and the 6th-difference floor over σ where it does
and where it does not.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.noise import bends_at_pixel_scale, white_noise_floor

UM, NT = 1e-6, 1e-9
SIGMAS = (1 * NT, 5 * NT, 25 * NT)
# label, sample side µm, grains/mm³, thickness µm, height µm, step µm
SYNTHETIC = (
    ("dense 60 µm, 0.5 µm up, 2 µm step", 60, 1e5, 10, 0.5, 2),
    ("dense 60 µm, 2 µm up, 2 µm step", 60, 1e5, 10, 2, 2),
    ("dense 60 µm, 5 µm up, 2 µm step", 60, 1e5, 10, 5, 2),
    ("dense 60 µm, 0.5 µm up, 1 µm step", 60, 1e5, 10, 0.5, 1),
    ("sparse 200 µm, 0.5 µm up, 4 µm step", 200, 1e4, 10, 0.5, 4),
    ("sparse 200 µm, 5 µm up, 4 µm step", 200, 1e4, 10, 5, 4),
    ("sparse 200 µm, 20 µm up, 4 µm step", 200, 1e4, 10, 20, 4),
)


def differences(bz: np.ndarray, order: int, axis: int = 1) -> np.ndarray:
    """`order`-th differences along `axis` (1 the lines), scaled to white noise's RMS."""
    b = bz if axis == 1 else bz.T
    w = np.array([(-1) ** i * math.comb(order, i) for i in range(order + 1)], float)
    n = b.shape[1] - order
    d = sum(wi * b[:, i:i + n] for i, wi in enumerate(w)) / math.sqrt(np.sum(w**2))
    return d if axis == 1 else d.T


def mad(d: np.ndarray) -> float:
    return float(np.median(np.abs(d[np.isfinite(d)])) / 0.6745)


def pixelwise_lower(bz: np.ndarray) -> float:
    """Median of the lower of |6th difference| along and across the lines at each pixel."""
    along, across = differences(bz, 6, 1)[3:-3, :], differences(bz, 6, 0)[:, 3:-3]
    return float(np.median(np.minimum(np.abs(along), np.abs(across))))


def mixed(bz: np.ndarray, order: int = 6) -> float:
    """Floor from the 2D differences of `order` along and across the lines (the 6th difference
    along the lines, differenced 6 times across them): a field's spectrum falls with |k|, least
    at the grid's corner, which these pass most."""
    w = np.array([(-1) ** i * math.comb(order, i) for i in range(order + 1)], float)
    k = np.outer(w, w) / np.sum(w**2)
    ny, nx = bz.shape[0] - order, bz.shape[1] - order
    return mad(sum(k[a, b] * bz[a:a + ny, b:b + nx]
                   for a in range(order + 1) for b in range(order + 1)))


def lower_quartile(bz: np.ndarray) -> float:
    both = np.abs(np.r_[differences(bz, 6, 1).ravel(), differences(bz, 6, 0).ravel()])
    return float(np.quantile(both, 0.25) / 0.31864)  # a half-normal's quartile: Φ⁻¹(0.625)


def estimators(pixelwise_scale: float) -> dict[str, Callable[[np.ndarray], float]]:
    return {
        "lines (info)": white_noise_floor,
        "columns": lambda bz: mad(differences(bz, 6, 0)),
        "lower axis": lambda bz: min(white_noise_floor(bz), mad(differences(bz, 6, 0))),
        "pixelwise": lambda bz: pixelwise_lower(bz) / pixelwise_scale,
        "quartile": lower_quartile,
        "10th diff": lambda bz: mad(differences(bz, 10, 1)),
        "2D 6th": mixed,
    }


def maps(samples: int) -> Iterator[tuple[str, np.ndarray]]:
    for shape in ((12, 12), (31, 31), (100, 100)):
        for _ in range(samples):
            yield f"white noise {shape[0]} × {shape[1]}", np.zeros(shape)
    for label, side, density, thickness, height, step in SYNTHETIC:
        for seed in range(samples):
            rng = np.random.default_rng(seed)
            sample = synth.make_sample((side * UM, side * UM), thickness * UM, density, rng,
                                       "uniform-sphere")
            yield label, synth.scan(sample, height=height * UM, step=step * UM,
                                    sensor_size=(0.0, 0.0), noise=0.0, rng=rng).bz


def span(values: list[float]) -> str:
    if not values:
        return "-".center(17)
    v = np.array(values)
    return f"{np.median(v):5.2f} [{v.min():4.2f},{v.max():5.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="samples (seeds) per kind")
    parser.add_argument("--draws", type=int, default=6, help="noise draws per map and σ")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    scale = float(np.median([pixelwise_lower(rng.standard_normal((41, 41)))
                             for _ in range(200)]))
    found = estimators(scale)
    floors: dict[tuple[str, float, str], list[float]] = {}
    flags: dict[tuple[str, float], list[tuple[bool, float]]] = {}
    for label, clean in maps(args.samples):
        for sigma in SIGMAS:
            for _ in range(args.draws):
                bz = clean + rng.normal(0.0, sigma, clean.shape)
                for name, estimate in found.items():
                    floors.setdefault((label, sigma, name), []).append(estimate(bz) / sigma)
                flags.setdefault((label, sigma), []).append(
                    (bends_at_pixel_scale(bz), white_noise_floor(bz) / sigma))
    print(f"pixelwise scale (white noise): {scale:.4f}\n")
    print("floor / σ: median [min, max]")
    print(f"{'map':38s} {'σ nT':>4s} " + " ".join(f"{n:>17s}" for n in found))
    for label, sigma in flags:
        print(f"{label:38s} {sigma / NT:4.0f} "
              + " ".join(span(floors[(label, sigma, n)]) for n in found))
    print("\nbends_at_pixel_scale: flagged, and the info floor / σ where flagged and where not")
    for (label, sigma), v in flags.items():
        said = [r for f, r in v if f]
        plain = [r for f, r in v if not f]
        print(f"{label:38s} {sigma / NT:4.0f} {100 * len(said) / len(v):5.1f} %  "
              f"{span(said)}  {span(plain)}")


if __name__ == "__main__":
    main()
