"""The residual against the noise: a fit limited by its model (a grain missing from the grain
file) is said to be so, and `--sd-from` chooses the σ of the SDs and the higher-order test."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import stats as sps
from scipy.ndimage import gaussian_filter
from test_mmt_cli_models import JSON, NPZ
from test_mmt_joint import GRAINS, M_TRUE, NT, POS, UM, VOL, clean_map, low_map, noisy
from threadpoolctl import threadpool_limits

from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.inversion import SingularWarning, forward
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.analysis.mmt.solver.misfit import MISFIT_CHI2, misfit_note, residual_misfit
from smm_daq.analysis.noise import white_noise_floor
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData

SIGMA = 20 * NT
# grain 1, 4 µm deep, left out of the grain file: the micro-CT missed it
MISSING = point_grains(POS[1:], VOL[1:], np.array([2, 3, 4]))


def test_a_noise_only_residual_is_the_noise_and_says_nothing():
    rng = np.random.default_rng(21)
    scan = Scan(noisy(low_map(), SIGMA, rng), 3 * UM, sigma=SIGMA)
    given = residual_misfit(invert_scans([scan], GRAINS, model="quadrupole"))
    # 441 pixels less 32 unknowns: the reduced chi-square's SD is √(2/409) = 0.07
    assert given is not None and not given.from_floor
    assert abs(given.reduced_chi2 - 1) < 4 * np.sqrt(2 / 409)
    floor = residual_misfit(invert_scans([Scan(scan.data, 3 * UM)], GRAINS, model="quadrupole"))
    assert floor is not None and floor.from_floor  # σ from the residual: against its floor
    assert floor.reduced_chi2 < MISFIT_CHI2
    assert misfit_note(given, tested=True) == misfit_note(floor, tested=True) == ""


def test_a_grain_missing_from_the_grain_file_is_said_to_limit_the_fit():
    rng = np.random.default_rng(22)
    scan = Scan(noisy(low_map(), SIGMA, rng), 3 * UM, sigma=SIGMA)
    for found in (residual_misfit(invert_scans([scan], MISSING, model="quadrupole")),
                  residual_misfit(invert_scans([Scan(scan.data, 3 * UM)], MISSING,
                                               model="quadrupole"), (SIGMA,))):
        assert found is not None and found.reduced_chi2 > 10 * MISFIT_CHI2
        note = misfit_note(found, " (remedy)", tested=True)
        assert note.startswith(f"; the residual is {found.ratio:.3g} × the noise (scan 'low': ")
        assert "against the noise given, 20 nT" in note
        assert note.endswith("the fit is limited by the model, not the noise; higher-order "
                             "tests and SDs assume noise only (remedy)")


def test_sds_from_the_residual_are_the_noise_sds_scaled_by_the_misfit():
    rng = np.random.default_rng(23)
    data = noisy(low_map(), SIGMA, rng)
    noise = invert_scans([Scan(data, 3 * UM, sigma=SIGMA)], MISSING, model="quadrupole")
    resid = invert_scans([Scan(data, 3 * UM)], MISSING, model="quadrupole")
    chi2 = residual_misfit(noise).reduced_chi2
    assert np.allclose(resid.coefficient_covariance, chi2 * noise.coefficient_covariance,
                       rtol=1e-9)


def test_p_values_of_dipoles_are_uniform_with_sigma_from_a_noise_only_residual():
    """Under the null (dipoles fitted as quadrupoles), the test with σ from the residual: its
    p-values uniform (Kolmogorov–Smirnov over 30 draws × 4 grains)."""
    rng = np.random.default_rng(24)
    p = []
    for _ in range(30):
        with threadpool_limits(1):
            res = invert_scans([Scan(noisy(low_map(), SIGMA, rng), 3 * UM)], GRAINS,
                               model="quadrupole")
        p.extend(res.higher_orders()[1])
    assert sps.kstest(p, "uniform").pvalue > 1e-3


def test_with_a_grain_missing_the_noise_only_test_flags_far_above_its_size():
    """What the note warns of, over draws of the noise: the misfit passes for higher orders."""
    rng = np.random.default_rng(25)
    flagged = 0
    for _ in range(10):
        with threadpool_limits(1):
            res = invert_scans([Scan(noisy(low_map(), SIGMA, rng), 3 * UM, sigma=SIGMA)],
                               MISSING, model="quadrupole")
        flagged += int(np.sum(res.higher_orders()[2]))
    assert flagged / 30 > 0.05 + 4 * np.sqrt(0.05 * 0.95 / 30)


def _points_without_grain_3(tmp_path):
    arrays = np.load(NPZ)
    keep = arrays["identifier"] != arrays["identifier"][2]
    path = tmp_path / "two.txt"
    np.savetxt(path, np.c_[arrays["particle_positions"][keep], arrays["volumes"][keep],
                           arrays["identifier"][keep]])
    return path


def test_cli_says_the_misfit_and_records_the_sigma_chosen(tmp_path, capsys):
    """One grain of the file left out: the summary says so, and `--sd-from residual` gives
    the noise-only covariance scaled by the reduced chi-square, recorded in the entry."""
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "q"]) == 0
    base = ["mmt", "invert", str(h5), "--entry", "q", "--grain-format", "points", "--grains",
            str(_points_without_grain_3(tmp_path)), "--sigma-nT", "1"]
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "n.csv"), "--result-entry", "n"]) == 0
    said = capsys.readouterr().out
    assert "the fit is limited by the model, not the noise" in said
    assert "against the noise given, 1 nT" in said
    assert "--sd-from residual scales the SDs by it" in said
    # a dipole result has no higher-order test: the note names none
    assert "not the noise; the SDs assume noise only" in said and "higher order" not in said
    assert main([*base, "--sd-from", "residual", "--out", str(tmp_path / "r.csv"),
                 "--result-entry", "r"]) == 0
    said = capsys.readouterr().out
    assert "(from the residual)" in said and "against the noise given, 1 nT" in said
    assert "the SDs here take σ from the residual, so they are scaled by it" in said
    with h5py.File(h5) as f:
        for entry, choice in (("n", "noise"), ("r", "residual")):
            assert f[f"{entry}/process/parameters/sd_from"][()].decode() == choice
        ratio = f["r/process/parameters/residual_over_noise"][()]
        assert ratio > np.sqrt(MISFIT_CHI2)
        scale = f["r/results/covariance"][()] / f["n/results/covariance"][()]
    # 320 pixels, 6 unknowns: the ratio's degrees of freedom are the fit's
    assert np.allclose(scale, ratio**2, rtol=1e-6)


def test_sd_from_noise_without_a_noise_is_refused_writing_nothing(tmp_path, capsys):
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "q"]) == 0
    out = tmp_path / "n.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "q", "--grain-format", "mpe", "--grains",
                 str(NPZ), "--sd-from", "noise", "--out", str(out)]) == 2
    assert "--sd-from noise without --sigma-nT; expected the noise SD measured" in \
        capsys.readouterr().err
    assert not out.exists()
    with h5py.File(h5) as f:
        assert list(f) == ["q"]


def test_an_octupole_truth_is_not_taken_for_misfit():
    """Real higher orders fitted by their model leave noise: no note."""
    rng = np.random.default_rng(26)
    coef = np.zeros((4, 8))
    coef[:, :3] = M_TRUE
    a = (3 * VOL / (4 * np.pi)) ** (1 / 3)
    coef[:, 3:] = 0.5 * 4e3 * (VOL * a)[:, None] * rng.choice([-1, 1], (4, 5))
    data = noisy(clean_map(coef, 3 * UM, model="quadrupole"), SIGMA, rng)
    found = residual_misfit(invert_scans([Scan(data, 3 * UM, sigma=SIGMA)], GRAINS,
                                         model="quadrupole"))
    assert found is not None and found.reduced_chi2 < MISFIT_CHI2


def _dense_map():
    """30 dipoles 1 to 3 µm deep under a 31 × 31 grid of 1 µm steps 0.5 µm above: a field
    that bends at the pixel scale, 5 nT of noise."""
    rng = np.random.default_rng(7)
    pos = np.c_[rng.uniform(2, 28, (30, 2)), rng.uniform(-3, -1, 30)] * UM
    grains = point_grains(pos, np.full(30, UM**3), np.arange(1, 31))
    axis = np.arange(0.0, 31.0, 1.0) * UM
    X, Y = np.meshgrid(axis, axis)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 0.5 * UM)]
    model = MultipoleModel.build(grains, Sensor.from_size((0.0, 0.0)), "dipole")
    bz = forward(model, sensors, rng.normal(0, 3e3, (30, 3))).reshape(X.shape)
    bz += 5 * NT * rng.standard_normal(bz.shape)
    return MapData(bz=bz, x=axis, y=axis, height=0.5 * UM, name="dense"), pos


def test_over_a_dense_map_a_grain_missing_is_not_silenced_by_its_high_floor():
    """The measured map's floor reads 100 times the noise there; the residual's is the noise:
    the grain left out (85 times the noise) is said, the full grain file is not."""
    data, pos = _dense_map()
    assert white_noise_floor(data.bz) > 50 * 5 * NT  # the measured field bends at the pixel scale
    labels = np.arange(1, 31)
    keep = labels != 21
    missing = residual_misfit(invert_scans([Scan(data, 0.5 * UM)], point_grains(
        pos[keep], np.full(29, UM**3), labels[keep]), model="dipole"))
    assert missing is not None and missing.from_floor
    assert missing.reduced_chi2 > 100 * MISFIT_CHI2
    assert "against the residual's noise floor" in misfit_note(missing, tested=False)
    full = residual_misfit(invert_scans([Scan(data, 0.5 * UM)], point_grains(
        pos, np.full(30, UM**3), labels), model="dipole"))
    assert full is not None and full.from_floor and full.reduced_chi2 < MISFIT_CHI2
    assert abs(full.noise_sigma / (5 * NT) - 1) < 0.15


def test_grains_given_twice_count_the_residuals_dof_with_the_fits_rank():
    """4 grains, 2 of them given twice, as octupoles on 121 pixels: 60 directions fitted, not
    the 90 columns; a noise-only residual's reduced chi-square is SSR / (121 − 60) / σ² (over
    400 draws, scratch: mean 1.015 ± 0.009 so, 2.00 over N − n, the note on half the draws)."""
    from test_mmt_higher_order_dof import HEIGHT, coarse_map

    twice = point_grains(np.vstack([POS, POS[:2]]), np.r_[VOL, VOL[:2]], np.arange(1, 7))
    rng = np.random.default_rng(26)
    with pytest.warns(SingularWarning):
        res = invert_scans([Scan(noisy(coarse_map(), SIGMA, rng), HEIGHT, sigma=SIGMA)], twice,
                           model="octupole")
    resid = res.residual.bz[np.isfinite(res.residual.bz)]
    found = residual_misfit(res)
    assert found.reduced_chi2 == pytest.approx(float(resid @ resid) / (121 - 60) / SIGMA**2,
                                               rel=1e-9)
    assert misfit_note(found, tested=True) == ""


def _smooth_background(rng, rms, shape, length_px):
    """A field smooth over `length_px` pixels of RMS `rms`: noise correlated in space."""
    pad = int(4 * length_px)
    field = gaussian_filter(rng.standard_normal((shape[0] + 2 * pad, shape[1] + 2 * pad)),
                            length_px)[pad:-pad, pad:-pad]
    return field * (rms / field.std())


def test_noise_the_fit_takes_up_is_said_where_the_residual_is_below_the_noise_given():
    """20 nT of background smooth over 10 µm beside 20 nT of white noise, the σ given their
    28 nT: the quadrupoles take the background up (over draws, scratch: 65 to 69 % of these
    pure dipoles flagged at 5 %, ±2 %) and leave a residual at 0.73 × the σ given, which
    the note says (it said nothing: the residual is not above the noise). Against the
    residual's own floor it cannot be seen, and is not said."""
    rng = np.random.default_rng(27)
    base = low_map()
    bz = (base.bz + _smooth_background(rng, SIGMA, base.bz.shape, 2.5)
          + SIGMA * rng.standard_normal(base.bz.shape))
    data = MapData(bz=bz, x=base.x, y=base.y, height=base.height, name="low")
    total = float(np.hypot(SIGMA, SIGMA))
    res = invert_scans([Scan(data, 3 * UM, sigma=total)], GRAINS, model="quadrupole")
    found = residual_misfit(res)
    assert found.under_noise and found.reduced_chi2 < 0.72  # 1 − 4 √(2/409)
    note = misfit_note(found, " (remedy)", tested=True)
    assert note.startswith(f"; the residual is {found.ratio:.3g} × the noise given (scan 'low'")
    assert "the fit took up part of that noise" in note
    assert "into the higher orders, which then flag dipoles" in note
    assert "(remedy)" not in note
    floor = residual_misfit(invert_scans([Scan(data, 3 * UM)], GRAINS, model="quadrupole"))
    assert not floor.under_noise and misfit_note(floor, tested=True) == ""
