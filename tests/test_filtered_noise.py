"""The lock-in emulator's noise through n poles: exact steps against quadrature, and the
variance of one section against the closed form of its equivalent noise bandwidth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad_vec
from scipy.linalg import expm

from simulators import filtered_noise
from simulators.sensor_model import enbw


@pytest.mark.parametrize("h_over_tau", [1e-3, 0.3, 17.0, 55.0])
def test_kick_covariance_is_the_integral_of_the_impulse_responses(h_over_tau):
    tau = 0.03
    h = h_over_tau * tau
    phi, root = filtered_noise.step(h, tau)
    a, b = filtered_noise._system(tau)
    q = quad_vec(lambda s: expm(a * s) @ b @ b.T @ expm(a.T * s), 0, h, epsabs=1e-14)[0]
    np.testing.assert_allclose(root @ root.T, q, rtol=0, atol=1e-9 * np.abs(q).max())
    np.testing.assert_allclose(phi, expm(a * h), atol=1e-15)


@pytest.mark.parametrize("poles", [1, 2, 3, 4])
def test_unit_white_noise_through_n_poles_has_the_variance_of_its_bandwidth(poles):
    # two-sided unit density -> one-sided 2; variance = one-sided density × ENBW
    tau = 0.01
    variance = filtered_noise.stationary(tau)[poles - 1, poles - 1]
    assert variance == pytest.approx(2 * enbw(tau, poles), rel=1e-9)
    assert filtered_noise.unit_scale(poles, tau) ** 2 * variance == pytest.approx(1.0)
