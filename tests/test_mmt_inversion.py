"""MMT inversion: exact recovery, statistics over noise draws, the far-field switch, masking,
the singular fallback and bad geometry."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from smm_daq.analysis.grains import GeometryWarning, from_arrays
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models import cuboid
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import stats
from smm_daq.analysis.mmt.solver.inversion import SingularWarning, invert_map, sensor_positions
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NT = 1e-9


def _small_sample(seed=3, size=30, thickness=15, density=4e5):
    rng = np.random.default_rng(seed)
    return synth.make_sample((size * UM, size * UM), thickness * UM, density, rng)


def test_noiseless_map_gives_the_true_magnetizations_with_nan_pixels_masked():
    sample = _small_sample()
    data = synth.scan(sample, height=2 * UM, step=1 * UM, sensor_size=(0.5 * UM, 0.5 * UM),
                      noise=0.0, rng=np.random.default_rng(0))
    bz = data.bz.copy()
    bz[3:6, 10:20] = np.nan
    result = invert_map(data.with_bz(bz), sample.grains, height=2 * UM,
                        sensor_size=(0.5 * UM, 0.5 * UM), sigma=1 * NT)
    scale = np.linalg.norm(sample.magnetization, axis=1)
    err = np.linalg.norm(result.magnetization - sample.magnetization, axis=1)
    assert np.all(err < 1e-6 * scale)
    assert np.isnan(result.residual.bz[4, 12]) and np.isnan(result.fitted.bz[4, 12])
    assert np.nanmax(np.abs(result.residual.bz)) < 1e-6 * np.nanmax(np.abs(data.bz))


def test_noise_draws_match_the_reported_covariance_and_95_percent_sphere():
    """Over many noise draws of one sample: the whitened errors have identity covariance
    (mean Mahalanobis distance 3) and the true M lies in the 95 % sphere in 95 % of draws."""
    sample = _small_sample(seed=5, size=24, thickness=12, density=5e5)
    clean = synth.scan(sample, height=1.5 * UM, step=1.5 * UM, sensor_size=(0, 0), noise=0.0,
                       rng=np.random.default_rng(0))
    sigma = 0.02 * np.abs(clean.bz).max()  # strong noise: errors well above rounding
    rng = np.random.default_rng(11)
    G = sample.grains.n_grains
    maha, inside, errs = [], [], []
    draws = 150
    for _ in range(draws):
        noisy = clean.with_bz(clean.bz + sigma * rng.standard_normal(clean.bz.shape))
        r = invert_map(noisy, sample.grains, height=1.5 * UM, sensor_size=(0, 0), sigma=sigma)
        d = r.magnetization - sample.magnetization
        errs.append(d)
        maha.append(np.einsum("gi,gij,gj->g", d, np.linalg.inv(r.covariance), d))
        inside.append(np.linalg.norm(d, axis=1) <= stats.sphere_radius_95(r.covariance))
    maha = np.array(maha)
    n = maha.size
    assert abs(maha.mean() - 3.0) < 4 * math.sqrt(6.0 / n)
    frac = np.mean(inside)
    assert abs(frac - 0.95) < 4 * math.sqrt(0.95 * 0.05 / n)
    # per grain, the empirical covariance of M̂ against the reported one (whitened ≈ I)
    errs = np.array(errs)
    for g in range(G):
        w = np.linalg.cholesky(np.linalg.inv(r.covariance[g]))
        white = errs[:, g] @ w
        emp = white.T @ white / draws
        assert np.all(np.abs(np.diag(emp) - 1) < 5 * math.sqrt(2 / draws))
        off = emp[np.triu_indices(3, 1)]
        assert np.all(np.abs(off) < 5 * math.sqrt(1 / draws))


def test_sigma_from_the_residual_estimates_the_noise():
    sample = _small_sample()
    sigma = 50 * NT
    data = synth.scan(sample, height=2 * UM, step=1 * UM, sensor_size=(0, 0), noise=sigma,
                      rng=np.random.default_rng(2))
    r = invert_map(data, sample.grains, height=2 * UM, sensor_size=(0, 0))
    assert r.sigma_from_residual
    n = data.bz.size - 3 * sample.grains.n_grains
    assert abs(r.sigma / sigma - 1) < 4 / math.sqrt(2 * n)


def test_grain_far_field_switch_bounds_q_and_the_solution():
    """Q with the grain far field against Q from the cuboids everywhere: every entry within
    1e-4 of its column's largest, and every M̂ moved by less than a tenth of its SD."""
    sample = _small_sample(seed=8, size=120, thickness=15, density=1e5)
    height = 1 * UM
    data = synth.scan(sample, height=height, step=2 * UM, sensor_size=(0, 0), noise=20 * NT,
                      rng=np.random.default_rng(1), exact=True)
    sensors, _ = sensor_positions(data, height)
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    fast = GreenModel.build(sample.grains, (0, 0), lo, hi, height)
    exact = GreenModel.build(sample.grains, (0, 0), lo, hi, height, exact=True)
    q_fast, q_exact = fast.block(sensors), exact.block(sensors)
    d2 = ((sensors[:, None, :] - fast.centroid[None]) ** 2).sum(-1)
    assert np.mean(d2 >= fast.far2[None]) > 0.3  # the switch is really used
    col_max = np.abs(q_exact).max(axis=0)
    assert np.all(np.abs(q_fast - q_exact).max(axis=0) <= 1e-4 * col_max)
    r_fast = invert_map(data, sample.grains, height=height, sensor_size=(0, 0), sigma=20 * NT)
    r_exact = invert_map(data, sample.grains, height=height, sensor_size=(0, 0), sigma=20 * NT,
                         exact=True)
    assert np.all(np.abs(r_fast.magnetization - r_exact.magnetization) < 0.1 * r_exact.sd)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_the_answers_lie_near_those_of_the_exact_model(seed, monkeypatch):
    """Every tier together (grain far field to order 12, the cuboids' expansions, shared
    corners) against the exact model (no grain far field, every pair to 1e-8 of its
    cuboid's scale), on 1 × 1 µm sensors 1 µm above an 80 × 80 × 30 µm sample at 5 nT: every
    M̂ within 0.15 SD and the median within 0.02 SD (measured: at most 0.115 and 0.011, both on
    seed 4; the tiers before the grain's orders 6 and 8 gave 0.177 and 0.023 there)."""
    rng = np.random.default_rng(seed)
    sample = synth.make_sample((80 * UM, 80 * UM), 30 * UM, 1e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(UM, UM), noise=5 * NT,
                      rng=rng)
    kwargs = {"height": 1 * UM, "sensor_size": (UM, UM), "sigma": 5 * NT, "device": "cpu"}
    fast = invert_map(data, sample.grains, **kwargs)
    monkeypatch.setattr(cuboid, "CUBOID_TOLERANCE", 1e-8)
    monkeypatch.setattr(cuboid, "NEAR_TOLERANCE", 1e-8)
    ref = invert_map(data, sample.grains, exact=True, **kwargs)
    shift = np.abs(fast.magnetization - ref.magnetization) / ref.sd
    assert shift.max() < 0.15 and np.median(shift) < 0.02
    assert np.any(fast.magnetization != ref.magnetization)


def test_indistinguishable_grains_warn_and_get_infinite_uncertainty():
    cub = np.array([[0, 0, -3, 2, 2, 2], [0, 0, -3, 2, 2, 2], [12, 5, -4, 2, 3, 2]]) * UM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        grains = from_arrays(cub, np.array([1, 2, 3]))
    x = np.arange(-15, 26) * UM
    y = np.arange(-15, 21) * UM
    X, Y = np.meshgrid(x, y)
    model = GreenModel.build(grains, (0, 0), np.array([x[0], y[0]]), np.array([x[-1], y[-1]]),
                             1 * UM)
    q = model.block(np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1 * UM)])
    bz = (q @ np.array([1e4, 0, 0, 1e4, 0, 0, 0, 2e4, 0])).reshape(X.shape)
    with pytest.warns(SingularWarning, match="pseudo-inverse"):
        r = invert_map(MapData(bz=bz, x=x, y=y), grains, height=1 * UM, sensor_size=(0, 0),
                       sigma=1 * NT)
    assert np.all(np.isinf(r.sd[:2]))
    np.testing.assert_allclose(r.magnetization[2], [0, 2e4, 0], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(r.magnetization[0] + r.magnetization[1], [2e4, 0, 0], rtol=1e-6,
                               atol=1e-3)


def test_grains_at_or_above_the_sensor_are_refused():
    grains = from_arrays(np.array([[0, 0, -0.5, 1, 1, 1]]) * UM, np.array([9]), source="g.csv")
    x = np.arange(-5, 6) * UM
    data = MapData(bz=np.zeros((x.size, x.size)), x=x, y=x)
    with pytest.raises(InputError, match=r"g\.csv, line 1: grain 9 reaches"):
        invert_map(data, grains, height=-0.2 * UM, sensor_size=(0, 0))


def test_damping_shrinks_the_solution_and_its_covariance():
    sample = _small_sample()
    data = synth.scan(sample, height=2 * UM, step=1 * UM, sensor_size=(0, 0), noise=20 * NT,
                      rng=np.random.default_rng(4))
    plain = invert_map(data, sample.grains, height=2 * UM, sensor_size=(0, 0), sigma=20 * NT)
    damped = invert_map(data, sample.grains, height=2 * UM, sensor_size=(0, 0), sigma=20 * NT,
                        damping=1e-2)
    assert np.linalg.norm(damped.magnetization) < np.linalg.norm(plain.magnetization)
    assert np.all(damped.sd <= plain.sd * (1 + 1e-9))


def test_a_deep_dense_cluster_beyond_the_normal_equations_matches_the_svd_of_q():
    """40 grains packed at 20-40 µm depth under a 61 × 61 µm scan: cond(Q) with unit columns
    is ~3e8, so QᵀQ (cond ~1e17) is singular in double precision; the QR-based solution and
    its covariance must still match the SVD of Q held whole (numpy's gelsd, an independent
    factorization), with every grain resolved."""
    rng = np.random.default_rng(3)
    deep = np.c_[rng.uniform(-12, 12, (40, 2)), rng.uniform(-40, -20, 40)]
    shallow = np.c_[rng.uniform(-25, 25, (6, 2)), rng.uniform(-6, -3, 6)]
    centres = np.r_[deep, shallow]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        grains = from_arrays(np.c_[centres, np.full((len(centres), 3), 2.0)] * UM,
                             np.arange(1, len(centres) + 1))
    x = np.arange(-30, 31) * UM
    X, Y = np.meshgrid(x, x)
    model = GreenModel.build(grains, (0, 0), np.array([x[0], x[0]]), np.array([x[-1], x[-1]]),
                             1 * UM)
    q = model.block(np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1 * UM)])
    norms = np.linalg.norm(q, axis=0)
    u, sv, vt = np.linalg.svd(q / norms, full_matrices=False)
    assert sv[0] / sv[-1] > 1e8  # the premise: beyond what the normal equations can hold
    m_true = rng.normal(0, 1e4, q.shape[1])
    sigma = 5 * NT
    phi = q @ m_true + sigma * rng.standard_normal(q.shape[0])
    ref = (vt.T @ ((u.T @ phi) / sv)) / norms
    w = vt.T / sv / norms[:, None]
    ref_cov = sigma**2 * np.einsum("gik,gjk->gij", w.reshape(-1, 3, w.shape[1]),
                                   w.reshape(-1, 3, w.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularWarning)
        r = invert_map(MapData(bz=phi.reshape(X.shape), x=x, y=x), grains, height=1 * UM,
                       sensor_size=(0, 0), sigma=sigma)
    ref_sd = np.sqrt(np.einsum("gii->gi", ref_cov))
    assert np.all(np.isfinite(r.sd))
    assert np.all(np.abs(r.magnetization - ref.reshape(-1, 3)) < 1e-3 * ref_sd)
    np.testing.assert_allclose(r.covariance, ref_cov, rtol=1e-3,
                               atol=1e-6 * ref_cov.max(axis=(1, 2))[:, None, None].min())
    assert np.max(ref_sd / np.abs(ref.reshape(-1, 3)).clip(1)) > 1  # some grains barely seen


def test_a_cuboid_grain_far_outside_the_scan_is_warned_of():
    from smm_daq.analysis.mmt.solver.inversion import FarGrainWarning

    sample = _small_sample()
    data = synth.scan(sample, height=2 * UM, step=1 * UM, sensor_size=(0.0, 0.0),
                      noise=1 * NT, rng=np.random.default_rng(0))
    g = sample.grains
    far = np.r_[g.cuboids, [[200 * UM, 15 * UM, -5 * UM, 2 * UM, 2 * UM, 2 * UM]]]
    grains = from_arrays(far, np.r_[g.labels[g.grain], 999])
    with pytest.warns(FarGrainWarning, match=r"1 of \d+ grains .* e\.g\. grain 999 at "
                                             r"\(200, 15, -5\) µm"):
        invert_map(data, grains, height=2 * UM, sensor_size=(0.0, 0.0), sigma=1 * NT)


def test_the_damped_solve_is_tikhonovs_closed_form_and_holds_no_gil(monkeypatch):
    """x = (QᵀQ + λI)⁻¹ Qᵀφ and the sandwich covariance (QᵀQ + λI)⁻¹ QᵀQ (QᵀQ + λI)⁻¹, λ the
    damping times the mean ‖Q[:, j]‖², against numpy's dense solve of Q held whole; the
    damping's rows are folded in by the GIL-free QR update, not SciPy's dtpqrt wrapper."""
    from scipy.linalg import lapack

    from smm_daq.analysis.mmt.solver.inversion import Triangle, solve_triangle

    def refused(*args, **kwargs):
        raise AssertionError("SciPy's dtpqrt (holds the GIL) was called")

    monkeypatch.setattr(lapack, "dtpqrt", refused)
    rng = np.random.default_rng(7)
    m, n, damping = 400, 150, 0.05
    q = rng.standard_normal((m, n)) * np.logspace(-3, 2, n)  # columns of different units
    phi = rng.standard_normal(m)
    r = np.linalg.qr(np.c_[q, phi], mode="r")
    sol = solve_triangle(Triangle(np.asfortranarray(r[:n, :n]), r[:n, n].copy()), damping)
    lam = damping * np.mean(np.sum(q**2, axis=0))
    a_inv = np.linalg.inv(q.T @ q + lam * np.eye(n))
    np.testing.assert_allclose(sol.x, a_inv @ q.T @ phi, rtol=1e-9, atol=0)
    cov = a_inv @ q.T @ q @ a_inv
    blocks = np.array([cov[3 * g:3 * g + 3, 3 * g:3 * g + 3] for g in range(n // 3)])
    own_scale = np.abs(blocks).max(axis=(1, 2), keepdims=True)  # each grain's own units
    assert np.all(np.abs(sol.covariance_blocks - blocks) <= 1e-8 * own_scale)


def test_a_damped_multipole_solve_weighs_each_order_by_its_own_columns():
    """Two grains of 8 unknowns (dipole in A/m, quadrupole in A m³, columns 1e23 apart):
    Λ holds, for each unknown, the damping times the mean ‖Q[:, i]‖² of its own order's
    columns; against numpy's dense solve of Q held whole."""
    from smm_daq.analysis.mmt.solver.inversion import Triangle, solve_triangle

    rng = np.random.default_rng(8)
    m, per_grain, damping = 200, 8, 0.03
    order = np.tile(np.r_[np.zeros(3), np.ones(5)], 2).astype(bool)
    q = rng.standard_normal((m, 16)) * np.where(order, 1e15, 1e-8) * rng.uniform(0.5, 2, 16)
    phi = rng.standard_normal(m)
    r = np.linalg.qr(np.c_[q, phi], mode="r")
    sol = solve_triangle(Triangle(np.asfortranarray(r[:16, :16]), r[:16, 16].copy()), damping,
                         per_grain=per_grain)
    norms2 = np.sum(q**2, axis=0)
    lam = damping * np.where(order, norms2[order].mean(), norms2[~order].mean())
    a_inv = np.linalg.inv(q.T @ q + np.diag(lam))
    want = a_inv @ q.T @ phi
    np.testing.assert_allclose(sol.x, want, rtol=1e-8, atol=0)
    cov = a_inv @ q.T @ q @ a_inv
    for g in range(2):
        block = cov[8 * g:8 * g + 8, 8 * g:8 * g + 8]
        norm = np.sqrt(np.outer(np.diag(block), np.diag(block)))
        np.testing.assert_allclose(sol.covariance_blocks[g] / norm, block / norm, atol=1e-8)


def test_a_narrow_solve_runs_at_one_blas_thread(monkeypatch):
    """Up to NARROW_SOLVE_COLUMNS unknowns the solve's LAPACK calls are too short for a
    second BLAS thread to pay (it cost 7 times the CPU on 2 loaded cores): they run at one,
    and the threads BLAS had are restored after."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from smm_daq.analysis.mmt.solver import inversion

    def blas_threads() -> int:
        return max(lib["num_threads"] for lib in threadpool_info()
                   if lib["user_api"] == "blas")

    seen = []
    inverse = inversion._triangular_inverse

    def spy(r, overwrite=False):
        seen.append(blas_threads())
        return inverse(r, overwrite)

    monkeypatch.setattr(inversion, "_triangular_inverse", spy)
    rng = np.random.default_rng(2)
    n = 90
    r = np.linalg.qr(rng.standard_normal((300, n + 1)), mode="r")
    tri = inversion.Triangle(np.asfortranarray(r[:n, :n]), r[:n, n].copy())
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_threads() < 2:
            pytest.skip("BLAS runs one thread here")
        inversion.solve_triangle(tri)
        assert seen == [1]
        assert blas_threads() == 2
