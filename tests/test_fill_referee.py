"""Harmonic inpainting refereed by closed forms: the five-point Laplacian is exact for
polynomials of degree ≤ 3 in each variable, so a harmonic polynomial (Re and Im of (x + iy)ⁿ,
n ≤ 3) satisfies the discrete equation exactly, and the fill of an interior hole must give
it back to the sparse solver's rounding (the values are O(1), the system well conditioned:
1e-10 allows for the condition number ~ (hole width)²). And the discrete maximum principle:
a filled value never leaves the range of the measured values around it.
"""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.fill import fill_nan


def harmonic(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    z = px + 1j * py
    return (0.3 + (1.2 - 0.7j) * z + (0.4 + 0.9j) * z**2 - (0.25 - 0.1j) * z**3).real


def grid(nx: int = 70, ny: int = 50) -> tuple[np.ndarray, np.ndarray]:
    # pixel units, centred, scaled so the cubic and linear terms are comparable
    px, py = np.meshgrid((np.arange(nx) - nx / 2) / 20, (np.arange(ny) - ny / 2) / 20)
    return px, py


@pytest.mark.parametrize("shape", ["block", "ring", "scattered"])
def test_fill_of_an_interior_hole_is_the_harmonic_polynomial(shape):
    px, py = grid()
    truth = harmonic(px, py)
    holes = np.zeros(truth.shape, bool)
    if shape == "block":
        holes[10:35, 15:50] = True
    elif shape == "ring":  # a hole with measured pixels inside it
        r = np.hypot(px - 0.1, py + 0.05)
        holes = (r > 0.2) & (r < 0.8)
    else:
        rng = np.random.default_rng(3)
        holes[1:-1, 1:-1] = rng.random((48, 68)) < 0.6
    data = np.where(holes, np.nan, truth)
    filled = fill_nan(data)
    np.testing.assert_array_equal(filled[~holes], truth[~holes])
    assert np.abs(filled - truth).max() < 1e-10 * np.abs(truth).max()


def test_filled_values_keep_to_the_range_of_their_boundary():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(40, 60))
    holes = np.zeros(values.shape, bool)
    holes[8:30, 12:45] = True
    frame = np.zeros(values.shape, bool)
    frame[7:31, 11:46] = True
    frame &= ~holes  # the measured pixels that touch the hole
    filled = fill_nan(np.where(holes, np.nan, values))
    assert filled[holes].max() <= values[frame].max()
    assert filled[holes].min() >= values[frame].min()
