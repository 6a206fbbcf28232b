"""What an outline's crossing check costs just under the sweep's threshold (`SWEEP_PAIRS` pairs
of near edges an edge), against the sweep line that runs above it; it prints figures, asserts
nothing.

    .venv/bin/python benchmarks/polygon_pairs.py [--spikes 1000 2000]

The worst input below the threshold: a star of long spikes converging on its centre (every
spike's edges near every other's there), the outer arc between spikes cut into short edges so
that the pairs stay just under `SWEEP_PAIRS` an edge. Both the pair-by-pair test and the sweep
grow with the vertices (at most `SWEEP_PAIRS` pairs an edge; the sweep's K log K). Here (2
shared cores): 17,000 vertices, 252 pairs an edge: 0.65 s checked, 0.23 s for the sweep alone;
138,000 vertices, 255 an edge: 3.3 s and 2.1 s. No pairwise loop grows faster than the outline:
past ~1 s, it is the outline's size (tens of thousands of vertices) that costs, as the sweep's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smm_daq.analysis.mmt import masks
from smm_daq.analysis.polygon_sweep import sweep


def star(spikes: int, arc: int, tip: float = 1.0, radius: float = 1000.0) -> np.ndarray:
    """A star of `spikes` spikes, their tips at `tip` from the centre, `arc` vertices on the
    outer arc between each spike's base and the next (no edge crosses another)."""
    points = []
    for i in range(spikes):
        a0 = 2 * np.pi * i / spikes
        for j in range(arc + 1):
            a = a0 - 0.25 * np.pi / spikes + (0.5 * np.pi / spikes) * j / max(arc, 1)
            points.append((radius * np.cos(a), radius * np.sin(a)))
        a1 = a0 + np.pi / spikes
        points.append((tip * np.cos(a1), tip * np.sin(a1)))
    return np.array(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spikes", type=int, nargs="+", default=[1000, 2000])
    args = parser.parse_args()
    for spikes in args.spikes:
        arc = 1
        while True:  # the fewest arc vertices that keep the pairs under the threshold
            v = masks._unit_scaled(star(spikes, arc))
            k = len(v)
            tested = int(masks._candidates(v)[1].sum())
            if tested <= masks.SWEEP_PAIRS * k:
                break
            arc = max(arc + 1, int(arc * tested / (masks.SWEEP_PAIRS * k)))
        t = time.perf_counter()
        crossing = masks._crossing(v)
        checked = time.perf_counter() - t
        t = time.perf_counter()
        apart, _ = sweep(v)
        swept = time.perf_counter() - t
        print(f"{k:,} vertices: {tested:,} near pairs ({tested / k:.0f} an edge, the sweep "
              f"above {masks.SWEEP_PAIRS}); check {checked:.2f} s (crossing {crossing}), "
              f"sweep alone {swept:.2f} s (apart {apart})")


if __name__ == "__main__":
    main()
