"""The margin rule of the tiled inversion.

A tile estimates the grains it keeps from the sensors of its window only. For the linear
least-squares problem, the whole inversion is the efficient estimator and the tile's is another
unbiased one, so (Hausman) their difference has variance Var(tile) − Var(whole): for a grain
whose Fisher information Σ Q² loses a fraction ε to sensors outside the window, the difference
has a standard deviation of about √ε σ. The information of a dipole at depth D below the sensor
plane (a grain, seen from afar) that falls beyond a horizontal distance k D is, per component,

    Mz: (9/(4U⁴) − 2/U³ + 1/(2U²)) / (3/4),   Mx, My: 4/U³ − 3/U⁴,   U = 1 + k²,

(the integrals of Bz² over the plane outside the circle). The rule: the margin is k D_max with
D_max the deepest grain centroid's distance to the sensor plane and k such that the larger of
these is ``INFORMATION_LOSS`` = 0.5 %: √0.005 σ ≈ 0.07 σ, under the tenth of a standard
deviation the tiles must match the whole inversion by, with room for what the coupling to
neighbouring grains adds (the tests measure the total on a case small enough to invert whole).
k comes to 2.83.

The nuisance band (grains beyond the window solved along with the tile's own so that their
field is not aliased into them) is one D_max wide: it absorbs the field of the grains closest
to the window's edges in the first passes (see `tiled`).
"""

from __future__ import annotations

import math

INFORMATION_LOSS = 0.005


def information_beyond(k: float) -> float:
    """The largest fraction, over the three components, of a dipole's Σ Bz² over the sensor
    plane that lies beyond a horizontal distance k·D (D its depth below the plane)."""
    u = 1.0 + k * k
    fz = (9.0 / (4.0 * u**4) - 2.0 / u**3 + 1.0 / (2.0 * u**2)) / 0.75
    fxy = 4.0 / u**3 - 3.0 / u**4
    return max(fz, fxy)


def margin_factor(loss: float = INFORMATION_LOSS) -> float:
    """The k with information_beyond(k) = loss (bisection; information_beyond decreases)."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if information_beyond(mid) > loss:
            lo = mid
        else:
            hi = mid
    return hi


def margin_for(max_depth: float, height: float, loss: float = INFORMATION_LOSS) -> float:
    """The margin in m for grains whose centroids lie at most `max_depth` m below the sample
    top, seen from a sensor plane `height` m above it."""
    depth = max_depth + height
    if not (math.isfinite(depth) and depth > 0):
        raise ValueError(f"grain depth below the sensor {depth!r} m: expected > 0")
    return margin_factor(loss) * depth


def band_for(max_depth: float, height: float) -> float:
    """The nuisance band in m: one depth scale."""
    return max_depth + height
