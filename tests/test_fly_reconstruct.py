"""Flown lines back to pixels: placing samples, the lag, binning, blur and noise.

The streams are made here independently of the code under test: a field along the line,
sampled by a stage moving at constant speed, passed through n cascaded one-pole filters
(scipy.signal.lfilter at a fine time step), plus white noise of a known density, then
sampled at the lock-in's buffer rate with a clock offset.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from smm_daq.acquisition.fly.noise import (
    averaged_sd,
    floor_time,
    flown_pixel_sd,
)
from smm_daq.acquisition.fly.reconstruct import (
    LineStreams,
    bin_line,
    blur_pixels,
    model_lag,
    refine_lag,
    sample_positions,
)
from smm_daq.acquisition.fly.settings import FlySettings, plan_line
from smm_daq.errors import InputError
from smm_daq.instruments.interfaces import BufferLimits

UM = 1e-6
UT = 1e-6
STEP = 10 * UM
NX = 40
PIXELS = np.arange(NX) * STEP


def field(x: np.ndarray, y: float) -> np.ndarray:
    """A dipole-like feature: a positive lobe and a weaker negative one, 60 µm wide."""
    r2 = (x - 200 * UM) ** 2 + (y - 20 * UM) ** 2
    return 2 * UT * np.exp(-r2 / (2 * (30 * UM) ** 2)) * (1 - 0.8 * (x - 200 * UM) / (60 * UM))


def fly(y: float, forward: bool, velocity: float, tau: float, poles: int, rate: float,
        delay: float, noise_density: float, rng: np.random.Generator,
        blank: bool = False) -> LineStreams:
    """One flown line over the pixels plus a run-up of 10 pixels at each end."""
    dt = min(tau, 1 / rate) / 20
    runup = 10 * STEP
    length = PIXELS[-1] + 2 * runup
    t = np.arange(0.0, length / velocity, dt)
    x = (-runup + velocity * t) if forward else (PIXELS[-1] + runup - velocity * t)
    signal = np.zeros_like(t) if blank else field(x, y)
    signal = signal + rng.normal(0.0, noise_density / np.sqrt(2 * dt), t.size)
    a = np.exp(-dt / tau)
    out = signal
    for _ in range(poles):  # n cascaded RC poles, started in their steady state
        out, _zf = lfilter([1 - a], [1, -a], out, zi=[a * out[0]])
    every = round(1 / (rate * dt))
    ts, reading = t[::every], out[::every]
    recorder = slice(None, None, 10)
    # The lock-in's clock runs `delay` ahead: its sample times read later than the truth.
    return LineStreams(t=ts + delay, bz=reading, t_pos=t[recorder], x_pos=x[recorder],
                       forward=forward)


def serpentine(n_lines: int, **kw) -> list[LineStreams]:
    rng = kw.pop("rng")
    return [fly(i * STEP, i % 2 == 0, rng=rng, **kw) for i in range(n_lines)]


def test_model_lag_and_blur_follow_the_filter() -> None:
    assert model_lag(1e-3, 4, 2e-3) == pytest.approx(6e-3)
    assert blur_pixels(2e-3, 1e-3, 4, STEP) == pytest.approx(0.4)


def test_bin_line_averages_the_samples_in_each_pixel() -> None:
    positions = np.array([-4.9, 0.0, 4.0, 5.1, 10.0, 14.0, 100.0]) * UM
    values = np.array([1.0, 3.0, 5.0, 7.0, 9.0, np.nan, 11.0])
    means, counts = bin_line(positions, values, PIXELS[:4])
    np.testing.assert_allclose(means[:2], [3.0, 8.0])
    np.testing.assert_array_equal(counts, [3, 2, 0, 0])
    assert np.isnan(means[2])


@pytest.mark.parametrize("velocity", [2e-3, 0.6e-3, 2e-3 / 30])
def test_an_injected_lag_is_recovered_to_a_tenth_of_a_pixel(velocity: float) -> None:
    tau, poles, delay = 1e-3, 4, 7e-3
    lines = serpentine(4, velocity=velocity, tau=tau, poles=poles, rate=4e3, delay=delay,
                       noise_density=2 * UT * 1e-3, rng=np.random.default_rng(1))
    truth = model_lag(tau, poles, delay)
    found = refine_lag(lines, guess=model_lag(tau, poles), span=2 * delay)
    assert abs(found - truth) * velocity / STEP < 0.1


def test_forward_and_backward_lines_put_the_dipole_in_the_same_place() -> None:
    velocity, tau, poles, delay = 1e-3, 1e-3, 4, 5e-3
    lines = serpentine(3, velocity=velocity, tau=tau, poles=poles, rate=4e3, delay=delay,
                       noise_density=1 * UT * 1e-3, rng=np.random.default_rng(2))
    lag = refine_lag(lines, guess=model_lag(tau, poles), span=3 * delay)

    def centre(line: LineStreams, lag_s: float) -> float:
        x = sample_positions(line, lag_s)
        fine = np.linspace(PIXELS[0], PIXELS[-1], 4001)
        order = np.argsort(x)
        return float(fine[np.argmax(np.interp(fine, x[order], line.bz[order]))])

    fwd, bwd = centre(lines[0], lag), centre(lines[1], lag)
    # Lines 0 and 1 are 10 µm apart in y; the peak's x does not depend on y here.
    assert abs(fwd - bwd) / STEP < 0.1
    naive = abs(centre(lines[0], 0.0) - centre(lines[1], 0.0)) / STEP
    assert naive > 1  # without the lag they disagree by pixels: the test can see a wrong lag


def test_refine_lag_needs_opposite_lines() -> None:
    rng = np.random.default_rng(0)
    one_way = [fly(0.0, True, 1e-3, 1e-3, 2, 2e3, 0.0, 0.0, rng) for _ in range(2)]
    with pytest.raises(ValueError, match="opposite"):
        refine_lag(one_way, 0.0, 1e-3)


def test_refine_lag_keeps_the_guess_where_no_samples_overlap() -> None:
    """Every sample timed long before its line's recording sits at the line's start: opposite
    lines then share no stretch to compare at any lag (the scan ended in 'unexpected ValueError:
    All-NaN slice encountered')."""
    rng = np.random.default_rng(0)
    lines = [fly(0.0, forward, 1e-3, 1e-3, 2, 2e3, -100.0, 0.0, rng) for forward in (True, False)]
    assert refine_lag(lines, 2e-3, 1e-3) == 2e-3


@pytest.mark.parametrize("ratio", [5, 10, 20])
def test_noise_of_a_blank_region_matches_the_model_whatever_the_time_constant(ratio) -> None:
    pixel_time, poles = 10e-3, 4
    velocity = STEP / pixel_time
    tau = pixel_time / ratio
    rate = 2000.0
    density = 1 * UT  # per √Hz
    rng = np.random.default_rng(ratio)
    values = []
    for i in range(12):
        line = fly(0.0, i % 2 == 0, velocity, tau, poles, rate, 0.0, density, rng, blank=True)
        means, _ = bin_line(sample_positions(line, model_lag(tau, poles)), line.bz, PIXELS)
        values.append(means)
    measured = float(np.nanstd(np.concatenate(values), ddof=1))
    model = flown_pixel_sd(density, pixel_time, tau, poles, rate)
    assert measured == pytest.approx(model, rel=0.1)


def test_the_flown_model_tends_to_plain_averaging_as_the_filter_shortens() -> None:
    """The filter's memory reaches beyond a pixel, so a pixel's own noise is a little lower
    than plain averaging (and neighbours correlate); with τ ≪ pixel time they agree."""
    plain = averaged_sd(1 * UT, 10e-3)
    sds = [flown_pixel_sd(1 * UT, 10e-3, 10e-3 / r, 4, 2e4) for r in (5, 20, 100)]
    assert sds[0] < sds[1] < sds[2]
    assert sds[2] == pytest.approx(plain, rel=0.02)


def test_floor_time_is_the_averaging_the_noise_needs() -> None:
    density, sigma = 1 * UT, 10e-9  # 1 µT/√Hz to 10 nT per pixel
    t = floor_time(1, density, sigma)
    assert averaged_sd(density, t) == pytest.approx(sigma)
    assert floor_time(1000, density, sigma) == pytest.approx(1000 * t)


@pytest.mark.parametrize("poles", [1, 2, 3, 4])
def test_a_fly_plan_keeps_the_filter_blur_under_a_third_of_a_pixel(poles) -> None:
    """So no flown line needs deconvolving: τ ≤ pixel time / 5, shorter with 3 or 4 poles."""
    taus = tuple(10.0 ** np.arange(-6, 2, 0.25))  # a fine ladder of time constants
    limits = BufferLimits(points=100_000, rates=(1e3, 2e3, 4e3, 8e3), time_constants=taus,
                          max_rates=(8e3,) * len(taus), poles=poles)
    fly = FlySettings(pixel_time=0.01)
    line = plan_line(fly, STEP, NX, limits, velocity_limit=1.0)
    assert line.time_constant <= fly.pixel_time / 5
    assert blur_pixels(line.velocity, line.time_constant, poles, STEP) <= 0.3
    tightest = min(fly.pixel_time / 5, 0.3 * fly.pixel_time / np.sqrt(poles))
    assert line.time_constant > tightest / 10**0.25 * (1 - 1e-9)  # the longest that fits


def test_a_fly_plan_shortens_its_time_constant_to_a_capture_ceiling_that_admits_its_rate(
        ) -> None:
    """A DSP lock-in samples its filter no faster than the time constant allows: the longest
    τ whose ceiling admits the rate, never a rate beyond the ceiling."""
    taus = (1e-4, 3e-4, 1e-3, 3e-3)
    limits = BufferLimits(points=100_000, rates=(1e3, 2e3, 4e3, 8e3), time_constants=taus,
                          max_rates=(1e5, 3e4, 1e4, 3e3), poles=2)
    line = plan_line(FlySettings(pixel_time=0.02, oversample=80), STEP, NX, limits, 1.0)
    assert (line.rate, line.time_constant) == (4e3, 1e-3)  # 3 ms allows only 3 kHz
    starved = BufferLimits(points=100_000, rates=(1e3, 2e3, 4e3, 8e3), time_constants=taus,
                           max_rates=(2e3,) * 4, poles=2)
    with pytest.raises(InputError, match=r"needs 4000 samples/s; the lock-in captures at most "
                                         r"2000 Hz at its shortest time constant 0\.0001 s"):
        plan_line(FlySettings(pixel_time=0.02, oversample=80), STEP, NX, starved, 1.0)
