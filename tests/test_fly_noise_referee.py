"""A flown pixel's noise model refereed by quadrature: the SD of the mean of k samples of
white noise (one-sided density b) through n RC poles is √(Σ_ij C(i − j)) / k with
C(lag) = (b²/2) ∫ h(t) h(t + lag) dt, h the n-pole impulse response t^{n−1} e^{−t/τ} /
((n−1)! τⁿ), here by scipy's adaptive quadrature (10 digits) rather than the product's
discrete correlation of a sampled gamma density. That midpoint sampling at τ/50 is good to
~(1/50)²/24 ≈ 2e-5 relative; 1e-4 allows for it, and a wrong lag, factor or pole count
moves the result by percents.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from smm_daq.acquisition.fly.noise import averaged_sd, flown_pixel_sd


def autocovariance(poles: int, tau: float, lag: float) -> float:
    def h(t: float) -> float:
        return t ** (poles - 1) * math.exp(-t / tau) / (math.factorial(poles - 1) * tau**poles)

    return quad(lambda t: h(t) * h(t + lag), 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0]


def mean_sd(density: float, pixel_time: float, tau: float, poles: int, rate: float) -> float:
    k = max(round(pixel_time * rate), 1)
    c = np.array([autocovariance(poles, tau, m / rate) for m in range(k)]) * density**2 / 2
    pairs = np.where(np.arange(k) == 0, k, 2 * (k - np.arange(k)))
    return math.sqrt(float(np.sum(pairs * c))) / k


@pytest.mark.parametrize("poles", [1, 2, 3, 4])
@pytest.mark.parametrize(("pixel_time", "tau", "rate"), [
    (10e-3, 2e-3, 2000.0), (10e-3, 5e-3, 1000.0), (1e-3, 1e-3, 512.0), (40e-3, 1e-3, 800.0),
])  # fmt: skip
def test_flown_pixel_sd_is_the_quadrature_sum(poles, pixel_time, tau, rate):
    density = 0.3e-6
    want = mean_sd(density, pixel_time, tau, poles, rate)
    assert flown_pixel_sd(density, pixel_time, tau, poles, rate) == pytest.approx(want, rel=1e-4)


def test_long_pixels_tend_to_the_white_noise_average():
    """With T ≫ τ the mean's variance is (b²/2)·∫C/T·2 = b²/(2T) (less O(nτ/T) from the
    window's ends): the closed form `averaged_sd` uses, checked from the quadrature side."""
    density, pixel_time, tau = 0.3e-6, 0.4, 1e-3
    want = mean_sd(density, pixel_time, tau, 2, 500.0)
    assert averaged_sd(density, pixel_time) == pytest.approx(want, rel=2 * 2 * tau / pixel_time)
