"""The lock-in emulators' output filter refereed by code and closed forms nobody here wrote.

- Step response: scipy.signal's step response of the transfer function 1/(τs + 1)^n, for
  every slope (n = 1..4 poles; the existing test covers n = 2 in closed form).
- Noise: the output X of a white input of density b (V/√Hz, one-sided, as the SR830 manual
  states it: X noise = b √ENBW) is white noise through the n-pole impulse response
  h(t) = t^{n−1} e^{−t/τ} / ((n−1)! τⁿ). Its variance is (b²/2) ∫ h² dt and its
  autocorrelation ρ(u) = ∫ h(t) h(t+u) dt / ∫ h² dt, both by scipy quadrature here (not the
  Lyapunov solution or the ENBW closed form the emulator uses). The readings are compared
  with these over thousands of samples, with tolerances of 5 standard errors from Bartlett's
  formulas for the sample variance and autocorrelation of a Gaussian series (computed from
  the referee's ρ): deterministic seeds, so no flakes, and a wrong pole count, section or
  scale moves them by tens of standard errors. A time scale 10 % off moves them by only
  ~3, so the noise state's covariance at a lag is also compared with the quadrature
  exactly (the last test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from lockin_input import Level
from scipy import signal
from scipy.integrate import quad

from simulators.sr830_emulator import SR830Emulator
from simulators.sr860_emulator import SR860Emulator
from smm_daq.clock import VirtualClock

TAU = 0.03
TAU_INDEX = {"sr830": 7, "sr860": 9}  # OFLT for 30 ms on each
DENSITY = 1e-6  # V/√Hz


def emulator(model: str, poles: int, source: Level, seed: int = 0):
    clock = VirtualClock()
    cls = SR830Emulator if model == "sr830" else SR860Emulator
    lia = cls(clock, source, rng=np.random.default_rng(seed))
    lia.handle(f"*CLS;ICPL 1;OFLT {TAU_INDEX[model]};OFSL {poles - 1}")
    assert lia.time_constant == TAU and lia.poles == poles
    lia.handle("SENS 26" if model == "sr830" else "SCAL 0")  # 1 V full scale: no clipping
    clock.sleep(40 * TAU)
    return lia, clock


def impulse(poles: int, t: float) -> float:
    return t ** (poles - 1) * math.exp(-t / TAU) / (math.factorial(poles - 1) * TAU**poles)


def autocovariance(poles: int, lag: float) -> float:
    """∫ h(t) h(t + lag) dt by adaptive quadrature."""
    value, _ = quad(lambda t: impulse(poles, t) * impulse(poles, t + lag), 0, np.inf,
                    epsabs=0, epsrel=1e-10, limit=200)
    return value


def bartlett(rho: np.ndarray, n: int) -> tuple[float, np.ndarray]:
    """Standard errors of the sample variance (relative) and of ρ̂_k, k = 0..len(rho)-1, for a
    Gaussian series of n samples with autocorrelation rho (ρ_0 = 1, negligible beyond)."""
    m = len(rho)
    full = np.concatenate([rho[:0:-1], rho])  # ρ_{-m+1} .. ρ_{m-1}
    var_sd = math.sqrt(2 * np.sum(full**2) / n)

    def r(j: int) -> float:
        return float(rho[abs(j)]) if abs(j) < m else 0.0

    rho_sd = np.array([
        math.sqrt(sum((r(j + k) + r(j - k) - 2 * r(k) * r(j)) ** 2 for j in range(1, 2 * m)) / n)
        for k in range(m)
    ])
    return var_sd, rho_sd


@pytest.mark.parametrize("model", ["sr830", "sr860"])
@pytest.mark.parametrize("poles", [1, 2, 3, 4])
def test_step_response_is_scipys_for_n_poles(model: str, poles: int) -> None:
    source = Level()
    lia, clock = emulator(model, poles, source)
    lia.advance_to(clock.now())  # settled at zero input
    source.volts = 0.2  # the step starts now
    times = np.linspace(0.0, 12 * TAU, 49)  # scipy's step starts at times[0]
    readings = []
    start = clock.now()
    for t in times:
        clock.sleep(start + t - clock.now())
        readings.append(lia.outputs()["X"])
    system = signal.lti([1.0], (np.poly1d([TAU, 1.0]) ** poles).coeffs)
    _, want = signal.step(system, T=times)
    # exact in the emulator (input held, closed-form steps); scipy's matrix exponential and
    # the virtual clock's float sums are good to ~1e-12
    np.testing.assert_allclose(readings, 0.2 * want, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("poles", [1, 2, 3, 4])
def test_polled_noise_has_the_variance_and_correlation_of_n_poles(poles: int) -> None:
    """Readings one time constant apart (each `outputs()` steps filter and noise exactly)."""
    lia, clock = emulator("sr830", poles, Level(0.0, DENSITY), seed=poles)
    n = 4000
    x = np.empty(n)
    for i in range(n):
        clock.sleep(TAU)
        x[i] = lia.outputs()["X"]
    lags = np.arange(24)  # ρ(24 τ) < 1e-6 for n ≤ 4
    r = np.array([autocovariance(poles, k * TAU) for k in lags])
    rho = r / r[0]
    var_sd, rho_sd = bartlett(rho, n)
    want_var = DENSITY**2 / 2 * r[0]
    assert np.var(x) == pytest.approx(want_var, rel=5 * var_sd)
    d = x - x.mean()
    for k in (1, 2, 4):
        got = float(np.mean(d[:-k] * d[k:]) / np.var(x))
        assert got == pytest.approx(rho[k], abs=5 * rho_sd[k])


def test_buffered_noise_has_the_correlation_of_four_poles() -> None:
    """The SR830 buffer at 512 Hz (samples τ/15 apart: the batch path the fly scan reads),
    τ = 30 ms, 24 dB/oct: the correlation at lags of 1, 2 and 4 τ."""
    poles = 4
    lia, clock = emulator("sr830", poles, Level(0.0, DENSITY), seed=7)
    lia.handle("SRAT 13;SEND 0;REST;STRT")
    clock.sleep(16.0)
    lia.handle("PAUS")
    x = np.array([float(v) for v in lia.handle("TRCA? 1,0,8192").split(",")[:-1]])
    assert x.size == 8192
    rate = 512.0
    k_tau = round(rate * TAU)  # 15 samples = 29.3 ms
    lags = np.arange(0, 24 * k_tau)
    r = np.array([autocovariance(poles, k / rate) for k in lags])
    rho = r / r[0]
    var_sd, rho_sd = bartlett(rho, x.size)
    assert np.var(x) == pytest.approx(DENSITY**2 / 2 * r[0], rel=5 * var_sd)
    d = x - x.mean()
    for k in (k_tau, 2 * k_tau, 4 * k_tau):
        got = float(np.mean(d[:-k] * d[k:]) / np.var(x))
        assert got == pytest.approx(rho[k], abs=5 * rho_sd[k])


@pytest.mark.parametrize("poles", [1, 2, 3, 4])
def test_noise_state_correlation_is_the_quadratures(poles: int) -> None:
    """What the statistics above resolve only to a few standard errors, exactly: a reading's
    covariance with one h later is [Φ(h) P∞]_{n-1,n-1} in the emulator's noise state
    (`filtered_noise`, driven by unit two-sided white noise); it must be the quadrature
    ∫ h(t) h(t + lag) dt, to the quadrature's and the matrix exponential's accuracy."""
    from simulators import filtered_noise

    p = filtered_noise.stationary(TAU)
    i = poles - 1
    r0 = autocovariance(poles, 0.0)
    assert p[i, i] == pytest.approx(r0, rel=1e-8)  # the stationary variance: ∫ h² dt
    for lag in (0.1 * TAU, 0.7 * TAU, 2 * TAU, 6 * TAU):
        phi, _ = filtered_noise.step(lag, TAU)
        want = autocovariance(poles, lag)
        assert (phi @ p)[i, i] == pytest.approx(want, rel=1e-7, abs=1e-12 * r0)
