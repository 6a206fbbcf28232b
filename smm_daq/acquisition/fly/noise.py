"""How long a scan must take for a given pixel noise, and the noise a flown pixel gets.

With white field noise of one-sided density b_n (T/√Hz), a reading averaged over T seconds
has variance b_n²/(2T); so N pixels at noise σ need at least T = N·b_n²/(2σ²) of averaging
(`floor_time`), whatever the scan does. A flown pixel averages the lock-in's filtered output,
sampled at a fixed rate, over the pixel's time: its variance is that of the mean of
correlated samples, from the filter's autocorrelation (`flown_pixel_sd`). While the filter's
time constant is a small part of the pixel time the two agree, which is why a fly scan runs
at τ ≤ pixel time / 5: the filter is then only an anti-alias filter.
"""

from __future__ import annotations

import numpy as np

from smm_daq.acquisition.fly.reconstruct import pole_response


def floor_time(n_pixels: int, noise_density: float, sigma: float) -> float:
    """The least averaging time (s) for `n_pixels` at pixel noise `sigma` (T) with white
    noise of one-sided density `noise_density` (T/√Hz)."""
    return n_pixels * noise_density**2 / (2 * sigma**2)


def averaged_sd(noise_density: float, seconds: float) -> float:
    """SD (T) of white noise of one-sided density `noise_density` averaged over `seconds`."""
    return noise_density / np.sqrt(2 * seconds)


def flown_pixel_sd(noise_density: float, pixel_time: float, time_constant: float, poles: int,
                   sample_rate: float) -> float:
    """SD (T) of the mean of the samples of one flown pixel: white noise of one-sided density
    `noise_density` through the n-pole filter, sampled at `sample_rate` for `pixel_time`.

    The filtered noise's autocovariance is (b_n²/2)·(h ⋆ h)(lag) for the filter's impulse
    response h; the mean of k samples has variance Σ_ij C(i − j)/k².
    """
    spacing = 1 / sample_rate
    # a fine step of at most min(τ, spacing)/50 that divides the spacing, so every lag
    # between samples falls on the fine grid (rounding it cost ~1e-3 of the SD)
    per_sample = int(np.ceil(50 * spacing / min(time_constant, spacing)))
    dt_fine = spacing / per_sample
    h = pole_response(poles, time_constant, dt_fine) / dt_fine  # density, integral 1
    k = max(round(pixel_time * sample_rate), 1)
    auto = np.correlate(h, h, mode="full")[h.size - 1:] * dt_fine  # (h ⋆ h)(m·dt_fine)
    fine_index = np.arange(k, dtype=np.int64) * per_sample
    cov = np.where(fine_index < auto.size, auto[np.minimum(fine_index, auto.size - 1)], 0.0)
    cov *= noise_density**2 / 2
    weights = np.where(np.arange(k) == 0, k, 2 * (k - np.arange(k)))  # pairs at each lag
    return float(np.sqrt(np.sum(weights * cov)) / k)
