"""Joint inversion of several scans, point-source models, masks and the higher-order test."""

import functools
import weakref

import numpy as np
import pytest
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver import inversion, stats
from smm_daq.analysis.mmt.solver.inversion import forward, invert_map
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NT = 1e-9
# The statistical tests solve hundreds of tiny systems, where BLAS threads only contend
# (tenfold slower on a loaded machine): one BLAS thread there.

POS = np.array([[10, 12, -4], [28, 9, -6], [15, 30, -9], [31, 29, -5]], float) * UM
VOL = np.array([3.0, 5.0, 8.0, 4.0]) * UM**3
M_TRUE = np.array([[3e3, -2e3, 4e3], [-1e3, 2e3, 1e3], [2e3, 2e3, -3e3], [1e3, -3e3, -2e3]])
GRAINS = point_grains(POS, VOL, np.array([1, 2, 3, 4]))
AXIS = np.arange(0.0, 41.0, 2.0) * UM


def clean_map(coef, height, model="dipole", sensor=(0.0, 0.0), name="scan"):
    X, Y = np.meshgrid(AXIS, AXIS)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    m = MultipoleModel.build(GRAINS, Sensor.from_size(sensor), model)
    bz = forward(m, sensors, coef).reshape(X.shape)
    return MapData(bz=bz, x=AXIS, y=AXIS, height=height, sensor_size=sensor[:2], name=name)


def noisy(data, sigma, rng):
    return MapData(bz=data.bz + sigma * rng.standard_normal(data.bz.shape), x=data.x,
                   y=data.y, height=data.height, sensor_size=data.sensor_size, name=data.name)


# The two clean maps are made at their first use, not at import: every pytest worker imports
# this module to collect it, and would compile the point-source field kernels for them there,
# both workers at once on a fresh clone.
@functools.cache
def low_map() -> MapData:
    """The dipoles' clean map 3 µm above, point sensor."""
    return clean_map(M_TRUE, 3 * UM, name="low")


@functools.cache
def high_map() -> MapData:
    """Their clean map 8 µm above, 2 µm square sensor."""
    return clean_map(M_TRUE, 8 * UM, sensor=(2 * UM, 2 * UM), name="high")


def test_joint_fit_of_two_heights_is_better_than_each_and_finds_the_truth():
    rng = np.random.default_rng(4)
    s_low, s_high = 20 * NT, 5 * NT
    low = Scan(noisy(low_map(), s_low, rng), 3 * UM, sigma=s_low)
    high = Scan(noisy(high_map(), s_high, rng), 8 * UM, (2 * UM, 2 * UM), sigma=s_high)
    joint = invert_scans([low, high], GRAINS, model="dipole")
    assert joint.scans == ("low", "high")
    assert joint.sigmas == (s_low, s_high)
    for alone in (invert_scans([low], GRAINS), invert_scans([high], GRAINS)):
        diff = alone.coefficient_covariance - joint.coefficient_covariance
        eig = np.linalg.eigvalsh(diff)
        assert eig.min() >= -1e-9 * np.abs(alone.coefficient_covariance).max()
        assert np.all(np.diagonal(diff, axis1=1, axis2=2) > 0)
    err = joint.magnetization - M_TRUE
    chi2 = np.einsum("gi,gij,gj->g", err, np.linalg.inv(joint.covariance), err)
    assert np.all(chi2 < sps.chi2.ppf(0.9999, 3))
    # each scan's residual is noise of its own σ
    for (_, resid), sg in zip(joint.fits, (s_low, s_high), strict=True):
        assert 0.8 < np.nanstd(resid.bz) / sg < 1.2


@pytest.mark.parametrize("joint", [False, True])
def test_coverage_of_the_95_percent_sphere_for_the_dipole_model(joint):
    rng = np.random.default_rng(5)
    sigma = 30 * NT
    draws = 200
    inside = 0
    radius = None
    for _ in range(draws):
        scans = [Scan(noisy(low_map(), sigma, rng), 3 * UM, sigma=sigma)]
        if joint:
            scans.append(Scan(noisy(high_map(), sigma / 3, rng), 8 * UM, (2 * UM, 2 * UM),
                              sigma=sigma / 3))
        with threadpool_limits(1):
            res = invert_scans(scans, GRAINS)
        if radius is None:
            radius = stats.sphere_radius_95(res.covariance)
        inside += int(np.sum(np.linalg.norm(res.magnetization - M_TRUE, axis=1) <= radius))
    n = draws * len(VOL)
    frac = inside / n
    assert abs(frac - 0.95) < 4 * np.sqrt(0.95 * 0.05 / n), frac


def test_sigma_from_the_residual_per_scan():
    rng = np.random.default_rng(6)
    low = Scan(noisy(low_map(), 40 * NT, rng), 3 * UM)
    high = Scan(noisy(high_map(), 10 * NT, rng), 8 * UM, (2 * UM, 2 * UM))
    res = invert_scans([low, high], GRAINS)
    assert res.sigma_from_residual
    assert res.sigmas[0] == pytest.approx(40 * NT, rel=0.1)
    assert res.sigmas[1] == pytest.approx(10 * NT, rel=0.1)


def test_sigmas_still_moving_after_the_last_pass_are_warned_of_as_smm_daqs(monkeypatch):
    """A warning of its own category (as every other smm-daq warning): the command line says
    it as 'smm-daq: warning: ...', not in Python's form with the file and line that warned."""
    from smm_daq.analysis.mmt.solver import joint
    from smm_daq.cli.main import _warning_text

    monkeypatch.setattr(joint, "MAX_PASSES", 1)  # one pass: no second estimate to settle
    rng = np.random.default_rng(6)
    scans = [Scan(noisy(low_map(), 40 * NT, rng), 3 * UM),
             Scan(noisy(high_map(), 10 * NT, rng), 8 * UM, (2 * UM, 2 * UM))]
    with pytest.warns(joint.UnsettledSigmaWarning) as caught:
        invert_scans(scans, GRAINS)
    said = [w for w in caught if issubclass(w.category, joint.UnsettledSigmaWarning)]
    assert len(said) == 1 and "still moved by more than 0.1% after 1 passes" in str(
        said[0].message)
    shown = _warning_text(said[0])
    assert shown.startswith("smm-daq: warning: the noise estimated from the residuals of ")


def test_masked_pixels_are_left_out():
    rng = np.random.default_rng(7)
    data = noisy(low_map(), 10 * NT, rng)
    bad = data.bz.copy()
    spots = [(3, 4), (10, 10), (15, 2)]
    mask = np.zeros(bad.shape, bool)
    for j, i in spots:
        bad[j, i] += 1e-5
        mask[j, i] = True
    corrupted = MapData(bz=bad, x=data.x, y=data.y, name="low")
    blank = bad.copy()
    blank[mask] = np.nan
    masked = invert_scans([Scan(corrupted, 3 * UM, mask=mask)], GRAINS)
    reference = invert_scans([Scan(MapData(bz=blank, x=data.x, y=data.y, name="low"),
                                   3 * UM)], GRAINS)
    unmasked = invert_scans([Scan(corrupted, 3 * UM)], GRAINS)
    assert np.allclose(masked.magnetization, reference.magnetization, rtol=1e-12)
    assert masked.n_sensors == bad.size - len(spots)
    assert np.all(np.isnan(masked.residual.bz[mask]))
    assert np.abs(unmasked.magnetization - masked.magnetization).max() > 100


def test_octupole_truth_recovered_and_higher_orders_resolved():
    rng = np.random.default_rng(8)
    coef = np.zeros((4, 15))
    coef[:, :3] = M_TRUE
    a = (3 * VOL / (4 * np.pi)) ** (1 / 3)
    coef[:, 3:8] = 0.5 * 4e3 * (VOL * a)[:, None] * rng.choice([-1, 1], (4, 5))
    coef[:, 8:] = 0.5 * 4e3 * (VOL * a * a)[:, None] * rng.choice([-1, 1], (4, 7))
    data = clean_map(coef, 2 * UM, model="octupole")
    res = invert_scans([Scan(noisy(data, 2 * NT, rng), 2 * UM, sigma=2 * NT)], GRAINS,
                       model="octupole")
    z = (res.coefficients - coef) / np.sqrt(np.einsum("gii->gi", res.coefficient_covariance))
    assert np.abs(z).max() < 5
    _, p, resolved = res.higher_orders()
    assert np.all(p < 0.05)
    assert resolved.all()
    table = res.table()
    assert list(table)[:3] == ["grain", "mx_A_per_m", "my_A_per_m"]
    assert "o33s_Am4" in table and "sd_q20_Am3" in table
    assert np.all(table["higher_order_resolved"] == 1.0)


def test_higher_order_test_has_its_stated_size_on_dipoles():
    rng = np.random.default_rng(9)
    sigma = 20 * NT
    draws = 100
    flagged = 0
    for _ in range(draws):
        with threadpool_limits(1):
            res = invert_scans([Scan(noisy(low_map(), sigma, rng), 3 * UM, sigma=sigma)], GRAINS,
                               model="quadrupole")
        flagged += int(np.sum(res.higher_orders()[2]))
    n = draws * len(VOL)
    assert abs(flagged / n - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n)


def test_cuboid_model_single_scan_matches_invert_map():
    cub = np.array([[10, 12, -4, 2, 2, 2], [28, 9, -6, 3, 2, 2], [15, 30, -9, 2, 3, 2]],
                   float) * UM
    grains = from_arrays(cub, np.array([1, 2, 3]))
    rng = np.random.default_rng(10)
    data = noisy(low_map(), 10 * NT, rng)
    ref = invert_map(data, grains, height=3 * UM, sensor_size=(0.0, 0.0))
    res = invert_scans([Scan(data, 3 * UM)], grains, model="cuboid")
    assert np.allclose(res.magnetization, ref.magnetization, rtol=1e-9)
    assert np.allclose(res.covariance, ref.covariance, rtol=1e-9)
    assert res.sigma == pytest.approx(ref.sigma, rel=1e-12)


def test_the_cuboid_model_is_refused_for_point_grains():
    from smm_daq.errors import InputError

    grains = point_grains(np.array([[0.0, 0.0, -5e-6]]), np.array([1e-18]), source="p.txt")
    x = np.arange(0, 10e-6, 1e-6)
    data = MapData(bz=np.zeros((x.size, x.size)), x=x, y=x, name="scan")
    for invert in (lambda: invert_scans([Scan(data, 1e-6)], grains, model="cuboid"),
                   lambda: invert_map(data, grains, height=1e-6, sensor_size=(0.0, 0.0))):
        with pytest.raises(InputError, match=r"cuboid model needs cuboid grains.*p\.txt.*"
                                             "dipole, quadrupole or octupole"):
            invert()


def test_grains_far_outside_the_scan_are_warned_of():
    """Positions in µm read as metres put grains metres away: a warning names one; grains
    under or near the scan give none."""
    import warnings

    from smm_daq.analysis.mmt.solver.inversion import FarGrainWarning

    data = noisy(low_map(), 1 * NT, np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FarGrainWarning)
        invert_scans([Scan(data, 3 * UM, sigma=1 * NT)], GRAINS, model="dipole")
    near = point_grains(np.r_[POS, [[-35 * UM, 20 * UM, -5 * UM]]], np.r_[VOL, 2 * UM**3])
    with warnings.catch_warnings():  # 35 µm outside a 40 µm scan: near enough
        warnings.simplefilter("error", FarGrainWarning)
        invert_scans([Scan(data, 3 * UM, sigma=1 * NT)], near, model="dipole")
    in_um = point_grains(np.r_[POS, [[30.0, 30.0, -6.0]]], np.r_[VOL, 2 * UM**3],
                         np.array([1, 2, 3, 4, 7]))
    with pytest.warns(FarGrainWarning, match=r"1 of 5 grains lie farther from the scanned "
                                             r"area than its size \(40 µm\), e.g. grain 7 at "
                                             r"\(3e\+07, 3e\+07, -6e\+06\) µm, 4\.2"
                                             r"\d+e\+07 µm outside it, 6e\+06 µm deep"):
        invert_scans([Scan(data, 3 * UM, sigma=1 * NT)], in_um, model="dipole")


def test_the_condition_number_is_that_of_q_in_unit_columns():
    """An octupole's unknowns mix A/m, A m³ and A m⁴: cond(Q) in raw columns is ~1e30 and
    says nothing; the reported one is that of Q with unit-norm columns (numpy's, to within
    LAPACK's estimate)."""
    data = noisy(low_map(), 1 * NT, np.random.default_rng(5))
    result = invert_scans([Scan(data, 3 * UM, sigma=1 * NT)], GRAINS, model="octupole")
    X, Y = np.meshgrid(AXIS, AXIS)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 3 * UM)]
    model = MultipoleModel.build(GRAINS, Sensor.from_size((0.0, 0.0)), "octupole")
    q = model.block(sensors, np.empty((sensors.shape[0], model.n_columns)))
    assert np.linalg.cond(q) > 1e20  # raw columns
    unit = q / np.linalg.norm(q, axis=0)
    exact = np.linalg.cond(np.linalg.qr(unit, mode="r"), 1)  # Q = U R: the 1-norm one of R
    assert exact < 1e8
    assert exact / 3 <= result.condition_number <= exact * (1 + 1e-9)  # an estimate, ≤ exact


def test_a_scan_given_twice_is_refused():
    from smm_daq.errors import InputError

    with pytest.raises(InputError, match="scans low, low: expected each scan once"):
        invert_scans([Scan(low_map(), 3 * UM, sigma=1 * NT)] * 2, GRAINS, model="dipole")


def test_damping_a_multipole_model_leaves_a_well_seen_dipole_as_it_is():
    """A dipole's columns (T per A/m) and a quadrupole's (T per A m³) differ some 1e23-fold
    at µm scales: a damping relative to one mean over all columns crushed every dipole to
    0 ± 0 A/m at any damping. A small damping changes a quadrupole fit no more than it
    changes a dipole fit: by a small fraction of an SD."""
    rng = np.random.default_rng(11)
    scans = [Scan(noisy(low_map(), 5 * NT, rng), 3 * UM, sigma=5 * NT)]
    plain = invert_scans(scans, GRAINS, model="quadrupole")
    damped = invert_scans(scans, GRAINS, model="quadrupole", damping=1e-6)
    sd = np.sqrt(np.einsum("gii->gi", plain.coefficient_covariance))
    assert np.all(np.abs(damped.coefficients - plain.coefficients) < 0.05 * sd)
    np.testing.assert_allclose(np.sqrt(np.einsum("gii->gi", damped.coefficient_covariance)),
                               sd, rtol=0.05)


def test_sigmas_of_scans_of_very_different_noise_are_estimated_and_used_for_the_sds():
    """1 nT beside 300 nT: a first, unweighted fit puts much of the noisy scan's noise into
    the quiet scan's residual. Two passes left the quiet scan's σ twice too large, and the
    SDs, weighted by the first pass's estimates, some 8 times those of the σ reported; the
    passes go on until the estimates settle, and the SDs are those of the σ reported."""
    rng = np.random.default_rng(12)
    low = noisy(low_map(), 300 * NT, rng)
    high = noisy(high_map(), 1 * NT, rng)
    est = invert_scans([Scan(low, 3 * UM), Scan(high, 8 * UM, (2 * UM, 2 * UM))], GRAINS,
                       model="quadrupole")
    assert est.sigmas[0] == pytest.approx(300 * NT, rel=0.1)
    assert est.sigmas[1] == pytest.approx(1 * NT, rel=0.1)
    given = invert_scans([Scan(low, 3 * UM, sigma=est.sigmas[0]),
                          Scan(high, 8 * UM, (2 * UM, 2 * UM), sigma=est.sigmas[1])], GRAINS,
                         model="quadrupole")
    sd = np.sqrt(np.einsum("gii->gi", given.coefficient_covariance))
    np.testing.assert_allclose(np.sqrt(np.einsum("gii->gi", est.coefficient_covariance)), sd,
                               rtol=1e-6)
    assert np.all(np.abs(est.coefficients - given.coefficients) <= 1e-6 * sd)


def test_sigmas_estimated_jointly_are_unbiased_where_one_scan_carries_the_fit():
    """1 nT beside 300 nT on 121 sensors each, 32 unknowns: the quiet scan's rows carry
    nearly all the fit's leverage. Its σ² estimated over its share of the degrees of freedom,
    N_s (1 − n/N), came out 0.85 times the truth on average and the noisy scan's 1.15 (the
    95 % sphere holding 92 % of the grains); over N_s − tr(H_ss), each is unbiased."""
    coarse = np.arange(0.0, 41.0, 4.0) * UM
    X, Y = np.meshgrid(coarse, coarse)
    coef = np.c_[M_TRUE, np.zeros((4, 5))]
    clean = []
    for height, sensor, name in ((3 * UM, (0.0, 0.0), "low"), (8 * UM, (2 * UM, 2 * UM), "high")):
        m = MultipoleModel.build(GRAINS, Sensor.from_size(sensor), "quadrupole")
        bz = forward(m, np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)], coef)
        clean.append(MapData(bz=bz.reshape(X.shape), x=coarse, y=coarse, height=height,
                             sensor_size=sensor, name=name))
    truth = np.array([300 * NT, 1 * NT])
    rng = np.random.default_rng(13)
    ratios = []
    for _ in range(40):
        with threadpool_limits(1):
            res = invert_scans([Scan(noisy(clean[0], truth[0], rng), 3 * UM),
                                Scan(noisy(clean[1], truth[1], rng), 8 * UM, (2 * UM, 2 * UM))],
                               GRAINS, model="quadrupole")
        ratios.append((np.array(res.sigmas) / truth) ** 2)
    mean = np.mean(ratios, axis=0)
    assert np.all(np.abs(mean - 1) < 0.08), mean  # 3 standard errors of a mean of 40


def test_a_damped_multipole_fit_does_not_depend_on_the_unit_of_length():
    """The same sample and map ten times larger (magnetizations alike, quadrupoles 10⁴ times
    larger in A m³): each order damped against its own columns gives the same fit, the
    quadrupoles scaled by 10⁴. One mean over every column (the quadrupoles' dominating it)
    damped the dipoles 10⁸ times more or less with the unit of length."""
    rng = np.random.default_rng(14)
    coef = np.c_[M_TRUE, np.zeros((4, 5))]
    a = (3 * VOL / (4 * np.pi)) ** (1 / 3)
    coef[:, 3:] = 0.3 * 4e3 * (VOL * a)[:, None] * rng.choice([-1, 1], (4, 5))
    data = noisy(clean_map(coef, 3 * UM, model="quadrupole"), 20 * NT, rng)
    fits = []
    for s in (1.0, 10.0):
        grains = point_grains(POS * s, VOL * s**3, np.array([1, 2, 3, 4]))
        scaled = MapData(bz=data.bz, x=data.x * s, y=data.y * s, height=3 * UM * s, name="low")
        fits.append(invert_scans([Scan(scaled, 3 * UM * s, sigma=20 * NT)], grains,
                                 model="quadrupole", damping=0.05))
    unit = np.r_[np.ones(3), np.full(5, 1e4)]
    sd = np.sqrt(np.einsum("gii->gi", fits[0].coefficient_covariance))
    assert np.all(np.abs(fits[1].coefficients / unit - fits[0].coefficients) <= 1e-6 * sd)
    np.testing.assert_allclose(np.sqrt(np.einsum("gii->gi", fits[1].coefficient_covariance))
                               / unit, sd, rtol=1e-6)
    # and the damping did something: the dipoles pulled towards 0 by a good part of an SD
    plain = invert_scans([Scan(data, 3 * UM, sigma=20 * NT)], GRAINS, model="quadrupole")
    assert np.max(np.abs(fits[0].coefficients - plain.coefficients)[:, :3] / sd[:, :3]) > 0.5


def test_the_sigmas_reported_are_where_the_estimates_settle():
    """Fitted with the σ reported, each scan's residual over N_s − tr(H_ss) (the hat matrix
    of the dense weighted Q, formed here) gives those σ back: the passes stop at the fixed
    point. Stopped at 5 %, the σ came from a pass short of it, 1 % off, on the side the
    unweighted first fit started from."""
    rng = np.random.default_rng(15)
    scans = [Scan(noisy(low_map(), 40 * NT, rng), 3 * UM),
             Scan(noisy(high_map(), 10 * NT, rng), 8 * UM, (2 * UM, 2 * UM))]
    res = invert_scans(scans, GRAINS, model="dipole")
    X, Y = np.meshgrid(AXIS, AXIS)
    blocks = []
    for scan, sigma in zip(scans, res.sigmas, strict=True):
        q = np.empty((X.size, 12))
        MultipoleModel.build(GRAINS, Sensor.from_size(scan.sensor_size), "dipole").block(
            np.c_[X.ravel(), Y.ravel(), np.full(X.size, scan.height)], q)
        blocks.append(q / sigma)
    q = np.vstack(blocks)
    hat = q @ np.linalg.solve(q.T @ q, q.T)
    for s, (_, resid) in enumerate(res.fits):
        rows = slice(s * X.size, (s + 1) * X.size)
        settled = np.sqrt(np.sum(resid.bz ** 2) / (X.size - np.trace(hat[rows, rows])))
        assert settled == pytest.approx(res.sigmas[s], rel=2e-3)


def test_a_scan_of_unknown_sigma_its_fit_follows_is_refused_naming_it():
    """One usable pixel of unknown noise, over the grains, leaves under one degree of freedom
    once the grains are fitted (its leverage near 1), and was fitted ever more closely as its
    σ shrank, pass after pass (0.25 nT reported for 5 nT, with a warning): refused, naming
    that scan and what would do."""
    rng = np.random.default_rng(1)
    mask = np.ones(high_map().bz.shape, bool)
    mask.flat[300] = False  # over the grains: its own leverage is high
    scans = [Scan(noisy(low_map(), 20 * NT, rng), 3 * UM),
             Scan(noisy(high_map(), 5 * NT, rng), 8 * UM, (2 * UM, 2 * UM), mask=mask)]
    with pytest.raises(InputError) as caught:
        invert_scans(scans, GRAINS)
    message = str(caught.value)
    assert "scan 'high'" in message and "'low'" not in message
    assert "1 usable pixels leave" in message and "degrees of freedom" in message
    assert "--sigma-nT" in message
    # given its σ, the same scan is used
    scans[1] = Scan(scans[1].data, 8 * UM, (2 * UM, 2 * UM), sigma=5 * NT, mask=mask)
    res = invert_scans(scans, GRAINS)
    assert res.sigmas[1] == 5 * NT


@pytest.mark.parametrize("damping", [0.0, 0.05])
def test_sigmas_are_estimated_over_the_rank_where_the_scans_carry_nothing_of_a_grain(damping):
    """Both scans measured only along the line y = 12 µm through grain 1, where the field of
    its y moment is exactly 0: no scan carries anything of it (a column of Q all 0, R
    singular, the grain unresolved). Each scan's σ² is still its residual over N_s − tr(H_ss),
    H the hat matrix of the fit made (the pseudo-inverse's, of rank n − 1; damped, that of
    (QᵀQ + Λ)⁻¹), formed here from the dense Q. The share N_s (1 − n/N) taken there instead
    left the σ tens of per cent off, with no word said."""
    rng = np.random.default_rng(16)
    X, Y = np.meshgrid(AXIS, AXIS)
    line = np.ones(X.shape, bool)
    line[POS[0, 1] == Y] = False  # the row through grain 1, exactly
    point_high = clean_map(M_TRUE, 8 * UM, name="high")  # a point sensor: its average is exact
    scans = [Scan(noisy(low_map(), 300 * NT, rng), 3 * UM, mask=line),
             Scan(noisy(point_high, 1 * NT, rng), 8 * UM, mask=line)]
    with pytest.warns(UserWarning, match="singular" if damping == 0 else "too large"):
        res = invert_scans(scans, GRAINS, model="dipole", damping=damping)
    rows = np.flatnonzero(~line.ravel())
    blocks = []
    for scan, sigma in zip(scans, res.sigmas, strict=True):
        q = np.empty((X.size, 12))
        MultipoleModel.build(GRAINS, Sensor.from_size(scan.sensor_size), "dipole").block(
            np.c_[X.ravel(), Y.ravel(), np.full(X.size, scan.height)], q)
        blocks.append(q[rows] / sigma)
    q = np.vstack(blocks)
    norms = np.linalg.norm(q, axis=0)
    assert norms[1] == 0  # grain 1's y moment: nothing of it in either scan
    scale = np.where(norms > 0, norms, 1.0)
    qs = q / scale
    if damping:
        damped = np.diag(damping * inversion.order_weights(norms, 3) / scale**2)
        hat = qs @ np.linalg.solve(qs.T @ qs + damped, qs.T)
    else:
        hat = qs @ np.linalg.pinv(qs)
        assert np.trace(hat) == pytest.approx(11)  # the rank: one direction unresolved
        assert np.all(np.isinf(res.sd[0])) and np.all(np.isfinite(res.sd[1:]))
    for s, (_, resid) in enumerate(res.fits):
        block = slice(s * rows.size, (s + 1) * rows.size)
        settled = np.sqrt(np.nansum(resid.bz ** 2) / (rows.size - np.trace(hat[block, block])))
        assert settled == pytest.approx(res.sigmas[s], rel=2e-3)


def _scans_blind_to_grain_1s_y() -> list[Scan]:
    """Two scans, their σ to be estimated, masked on the row through grain 1, so that
    neither sees its y moment: Q singular."""
    rng = np.random.default_rng(16)
    X, Y = np.meshgrid(AXIS, AXIS)
    line = np.ones(X.shape, bool)
    line[POS[0, 1] == Y] = False  # the row through grain 1, exactly
    point_high = clean_map(M_TRUE, 8 * UM, name="high")
    return [Scan(noisy(low_map(), 300 * NT, rng), 3 * UM, mask=line),
            Scan(noisy(point_high, 1 * NT, rng), 8 * UM, mask=line)]


def test_a_singular_joint_fit_says_so_once_over_its_passes():
    """The σ of both scans estimated: several solves, each of the same singular Q (a grain
    whose y moment neither scan sees). Its warning is said once, not once per pass."""
    scans = _scans_blind_to_grain_1s_y()
    passes = []
    with pytest.warns(inversion.SingularWarning) as caught:
        invert_scans(scans, GRAINS, model="dipole", progress=passes.append)
    assert passes  # solved more than once
    said = [w for w in caught if issubclass(w.category, inversion.SingularWarning)]
    assert len(said) == 1, [str(w.message) for w in said]
    assert "1 of 12 directions unresolved" in str(said[0].message)


def test_a_singular_joint_fit_takes_one_svd_per_pass(monkeypatch):
    """Each pass's degrees of freedom come from the pseudo-inverse its solve made (the test
    above checks them against the dense hat matrix): one SVD per solve, not a second of the
    same factor."""
    scans = _scans_blind_to_grain_1s_y()
    calls = {"svd": 0, "solve": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(inversion, "singular_svd", counted("svd", inversion.singular_svd))
    monkeypatch.setattr(inversion, "solve_triangle", counted("solve", inversion.solve_triangle))
    with pytest.warns(inversion.SingularWarning):
        invert_scans(scans, GRAINS, model="dipole")
    assert calls["solve"] > 1  # several passes
    assert calls["svd"] == calls["solve"]


def test_a_singular_joint_fit_frees_its_pseudo_inverse_before_the_forward_model(monkeypatch):
    """W, the n × n pseudo-inverse each pass's solve keeps for the scans' leverages, is no
    longer held once they are counted: the forward model (which holds its blocks of Q) runs
    without it, as does the next pass's solve. Freed at once, by its last reference going,
    not left to a collection of cycles (and no gc.collect per pass, slow in a full session's
    heap)."""
    scans = _scans_blind_to_grain_1s_y()
    kept, alive_in_forward = [], []
    solve, forward_model = inversion.solve_triangle, inversion.forward

    def solving(*args, **kwargs):
        sol = solve(*args, **kwargs)
        assert sol.pseudo_inverse is not None  # singular: the SVD's W kept
        kept.append(weakref.ref(sol.pseudo_inverse))
        return sol

    def forward(*args, **kwargs):
        alive_in_forward.append(sum(ref() is not None for ref in kept))
        return forward_model(*args, **kwargs)

    monkeypatch.setattr(inversion, "solve_triangle", solving)
    monkeypatch.setattr(inversion, "forward", forward)
    with pytest.warns(inversion.SingularWarning):
        invert_scans(scans, GRAINS, model="dipole")
    assert len(kept) > 1 and alive_in_forward  # several passes, each with its forward model
    assert alive_in_forward == [0] * len(alive_in_forward)


def test_one_scans_sigma_is_estimated_over_the_rank_where_q_is_singular():
    """One scan of unknown σ, measured only on the row through grain 1 (whose y moment puts
    nothing there): the pseudo-inverse fits 11 of the 12 directions, so the residual keeps
    N − 11 degrees of freedom; over N − 12 its σ² came out N − 11 / N − 12 too large (10/9
    here, 1.10 ± 0.015 over 1,000 draws), unlike the same scan's in a joint fit."""
    rng = np.random.default_rng(3)
    X, Y = np.meshgrid(AXIS, AXIS)
    line = np.ones(X.shape, bool)
    line[POS[0, 1] == Y] = False
    with pytest.warns(inversion.SingularWarning, match="1 of 12 directions unresolved"):
        res = invert_scans([Scan(noisy(low_map(), 30 * NT, rng), 3 * UM, mask=line)], GRAINS)
    resid = res.fits[0][1].bz
    n_used = int(np.count_nonzero(np.isfinite(resid)))
    assert n_used == AXIS.size
    assert res.sigmas[0] == pytest.approx(np.sqrt(np.nansum(resid**2) / (n_used - 11)),
                                          rel=1e-9)


def test_a_maps_sigma_is_estimated_over_the_rank_where_q_is_singular():
    """invert_map of cuboid grains, two of them the same cuboid (their columns equal, Q of
    rank 3 fewer than its 9 columns): σ² is the residual over N − 6, the fit's own degrees of
    freedom, not N − 9."""
    grains = from_arrays(np.array([[10, 12, -4, 2, 2, 2], [10, 12, -4, 2, 2, 2],
                                   [28, 25, -6, 3, 3, 3]], float) * UM, np.array([1, 2, 3]))
    x = np.arange(0.0, 41.0, 4.0) * UM
    X, Y = np.meshgrid(x, x)
    rng = np.random.default_rng(5)
    data = MapData(bz=1e-6 * np.exp(-((X - 20 * UM) ** 2 + (Y - 20 * UM) ** 2) / (10 * UM) ** 2)
                   + 30 * NT * rng.standard_normal(X.shape), x=x, y=x, height=5 * UM,
                   sensor_size=(0.0, 0.0), name="scan")
    with pytest.warns(inversion.SingularWarning, match="3 of 9 directions unresolved"):
        res = invert_map(data, grains, height=5 * UM, sensor_size=(0.0, 0.0), device="cpu")
    assert res.sigma == pytest.approx(np.sqrt(np.sum(res.residual.bz ** 2) / (x.size**2 - 6)),
                                      rel=1e-9)
