"""White noise through a cascade of identical RC sections, stepped exactly in time.

The lock-in's output filter passes the sensor's white noise: the noise on the output is the
white noise filtered by the same n poles as the signal, so readings a few time constants apart
are correlated exactly as the filter makes them, and an average over T ≫ τ has the variance
b²/(2T) that the noise density b promises, whatever n. (A single Ornstein-Uhlenbeck process of
the right variance gets the variance of one reading right but that of a long average wrong by
the ratio of the two equivalent noise bandwidths.)

The state (4 sections × 2 channels) is driven by unit two-sided white noise; over a step h it
moves by the exact transition Φ(h) = e^{Ah} plus a Gaussian kick of covariance
Q(h) = ∫₀ʰ e^{As} B Bᵀ e^{Aᵀs} ds = P∞ − Φ P∞ Φᵀ (P∞ the stationary covariance; this form
stays accurate for steps of many time constants, where Van Loan's block exponential
overflows). `unit_scale(poles, τ)` turns section `poles − 1` into unit variance, so the
emulator multiplies by the RMS noise in its ENBW.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.linalg import expm, solve_continuous_lyapunov

SECTIONS = 4
_STATIONARY_TAUS = 60.0  # beyond this a step forgets the state entirely (e^-60)


def _system(tau: float) -> tuple[np.ndarray, np.ndarray]:
    a = (np.eye(SECTIONS, k=-1) - np.eye(SECTIONS)) / tau
    b = np.zeros((SECTIONS, 1))
    b[0, 0] = 1.0 / tau
    return a, b


@lru_cache(maxsize=64)
def stationary(tau: float) -> np.ndarray:
    """Stationary covariance (4, 4) of the sections for unit white-noise input."""
    a, b = _system(tau)
    return solve_continuous_lyapunov(a, -b @ b.T)


@lru_cache(maxsize=256)
def step(h: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition Φ (4, 4) and a square root of the kick covariance (4, 4) over h seconds."""
    if h >= _STATIONARY_TAUS * tau:
        return np.zeros((SECTIONS, SECTIONS)), _sqrt(stationary(tau))
    a, _ = _system(tau)
    phi = expm(a * h)
    p = stationary(tau)
    q = p - phi @ p @ phi.T
    return phi, _sqrt((q + q.T) / 2)


def _sqrt(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    return v * np.sqrt(np.clip(w, 0.0, None))


def unit_scale(poles: int, tau: float) -> float:
    """Factor making section `poles − 1` of the state unit-variance."""
    return 1.0 / float(np.sqrt(stationary(tau)[poles - 1, poles - 1]))


def initial(tau: float, rng: np.random.Generator) -> np.ndarray:
    """A draw (4, 2) from the stationary distribution."""
    return _sqrt(stationary(tau)) @ rng.normal(size=(SECTIONS, 2))
