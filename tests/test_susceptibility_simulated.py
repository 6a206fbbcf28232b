"""Done-when of issue 5: a synthetic thin section with a known χ map, scanned by the simulator at
zero field and in field, recovers χ within the noise.

The thin section is a 30 µm layer on the scan's own 50 µm grid: four patches of pixel cuboids
(one cuboid per row of a patch, the same body as its pixels) with χ of 2 to 4 SI, two of them
also remanent, and six small strongly remanent grains (χ = 0) in the matrix. The simulator scans
it at zero field and at 40 µT in the plane; the remanent scan is registered onto the in-field one
and subtracted (`Session.subtract`, registration on), and the induced map is inverted with GCV
(no noise given), as `smm-daq susceptibility` does by default.

Registration reads the shift from the remanent field's gradients, so the part of the induced
map that looks like a shifted remanent map is taken for a shift and lost. The fine grains set
the gradients here, mostly away from the patches: the registered induced map is off the truth
by 1.1-1.16 σ RMS (1.01-1.02 σ unregistered). With the remanence on the patches alone it is
1.2-1.26 σ, and more where the remanence and the induced response share their shapes (reported
with issue 5); that limit of registration is not what this test is about.

Criteria, with σ = √2 × 0.25 µT the noise of the difference of two scans (configs/simulator.toml):
- the induced map matches the simulator's noiseless truth within 1.25 σ RMS (registration adds
  little), and the shift found is within 3 SD of zero (none was applied);
- GCV's noise estimate is σ within 15 %;
- ≥ 90 % of pixels have |χ̂ − χ| < 2 SD (95 % for the Gaussian field the prior assumes; sharp
  patch edges are not one);
- each patch's integrated χ (patch and a 2-pixel ring, the sensor height, for the blur) is
  within 10 % (the Tikhonov shrinkage the ℓ-weighted penalty allows, susceptibility.py) plus
  3 SD of that sum's noise: the estimator is linear at a fixed λ, so the SD comes from
  inversions of pure noise maps (σ white) at the λ GCV chose.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import ndimage

from simulators.sample import VirtualSample
from smm_daq.acquisition.session import Session
from smm_daq.analysis.susceptibility import invert_susceptibility
from smm_daq.cli.main import main

C = 12.5e-3  # m, the scan's centre (the stage's middle)
N = 29  # pixels a side
STEP = 50e-6
THICKNESS = 30e-6  # a standard thin section
FIELD_UT = (24.0, 32.0, 0.0)  # 40 µT in the plane, off both axes
SIGMA = np.sqrt(2) * 0.25e-6  # T, two scans' MTJ noise (configs/simulator.toml)
NOISE_DRAWS = 12

# (centre offset, semi-axes) in pixels from the map centre, χ (SI), remanence (A/m)
PATCHES = [
    ((-5.5, -5.0), (3.5, 4.5), 2.5, (0.0, 0.0, 0.0)),
    ((5.0, -5.5), (4.5, 3.5), 4.0, (150.0, -100.0, 100.0)),
    ((-5.0, 5.5), (3.5, 3.5), 2.0, (0.0, 0.0, 0.0)),
    ((5.5, 5.0), (4.5, 4.5), 3.0, (-100.0, 80.0, -120.0)),
]
# fine remanence carriers in the matrix: position (pixels from the centre), remanence (A/m)
GRAINS = [
    ((-11.0, -1.0), (1e5, 0.0, 0.0)),
    ((-2.0, -11.0), (0.0, -7e4, 7e4)),
    ((1.5, 0.5), (0.0, 0.0, -1e5)),
    ((11.0, -1.5), (6e4, 6e4, -5e4)),
    ((0.0, 11.0), (-8e4, 0.0, 6e4)),
    ((-10.0, 11.0), (0.0, 1e5, 0.0)),
]


def thin_section() -> tuple[VirtualSample, np.ndarray, np.ndarray]:
    """The sample, its χ map (N, N) on the scan grid and the patch labels (0: matrix).

    Each patch is one grain (its rows one body), demagnetized by its own field: the map holds
    the χ a field along FIELD_UT sees, ĥ · (χ_eff ĥ), which the inversion (M along the field)
    recovers; a patch's in-plane χ_eff is 7-20 % below its χ."""
    grid = C + (np.arange(N) - (N - 1) / 2) * STEP
    ix, iy = np.meshgrid(np.arange(N) - (N - 1) / 2, np.arange(N) - (N - 1) / 2)
    labels = np.zeros((N, N), int)
    cuboids, grain, remanence, susceptibility = [], [], [], []
    for k, ((ox, oy), (rx, ry), value, rem) in enumerate(PATCHES, 1):
        inside = ((ix - ox) / rx) ** 2 + ((iy - oy) / ry) ** 2 <= 1
        labels[inside] = k
        for row in np.flatnonzero(inside.any(axis=1)):
            cols = np.flatnonzero(inside[row])
            x0, x1 = grid[cols[0]] - STEP / 2, grid[cols[-1]] + STEP / 2
            cuboids.append([(x0 + x1) / 2, grid[row], -THICKNESS / 2, x1 - x0, STEP, THICKNESS])
            grain.append(k - 1)
        remanence.append(rem)
        susceptibility.append(value)
    for (gx, gy), rem in GRAINS:
        assert labels[round(gy + (N - 1) / 2), round(gx + (N - 1) / 2)] == 0
        cuboids.append([C + gx * STEP, C + gy * STEP, -THICKNESS / 2, 15e-6, 15e-6, 12e-6])
        grain.append(len(remanence))
        remanence.append(rem)
        susceptibility.append(0.0)
    sample = VirtualSample(
        np.array(cuboids), np.array(grain), np.array(remanence), np.array(susceptibility)
    )
    along = np.array(FIELD_UT) / np.linalg.norm(FIELD_UT)
    chi = np.zeros((N, N))
    for k in range(1, len(PATCHES) + 1):
        eff = sample.effective_susceptibility[sample.grain == k - 1][0]
        chi[labels == k] = along @ (eff * along)
    return sample, chi, labels


@pytest.mark.slow
def test_thin_section_chi_is_recovered_within_the_noise(tmp_path, capsys):
    sample, chi, labels = thin_section()
    path = tmp_path / "s.h5"
    with Session.open(path, world_options={"sample": sample, "seed": 7}) as s:
        scan = dict(center_um=(C / 1e-6, C / 1e-6), size_um=((N - 1) * 50.0,) * 2, step_um=50)
        s.scan("remanent", **scan)
        s.set_field(FIELD_UT)
        applied = s.rig.world.coils.field_at_sample(s.rig.clock.now())  # the scan ends at zero
        in_field = s.scan("in_field", **scan)
        s.subtract("in_field", "remanent", "induced")
        induced = s.read("induced")  # geometry and field as the entry holds them
    assert np.allclose(in_field.x, C + (np.arange(N) - (N - 1) / 2) * STEP)
    assert induced.applied_field == pytest.approx(np.array(FIELD_UT) * 1e-6)
    assert induced.height == pytest.approx(100e-6)  # the profile's sensor (simulator.toml)
    assert induced.sensor_size == pytest.approx((30e-6, 30e-6))
    with h5py.File(path, "r") as f:
        shift = f["induced/registration/shift"][()]
        shift_sd = f["induced/registration/shift_errors"][()]
    assert np.all(np.abs(shift) < 3 * shift_sd)

    # the induced map against the simulator's noiseless truth, up to a constant (the field's own
    # Bz, the ambient field's, drift: what the inversion's offset takes)
    px, py = np.meshgrid(induced.x, induced.y)
    sensors = np.c_[px.ravel(), py.ravel(), np.full(px.size, induced.height)]
    size = induced.sensor_size
    truth = sample.bz_true(sensors, size, applied) - sample.bz_true(sensors, size, np.zeros(3))
    truth = truth.reshape(px.shape)
    measured = np.isfinite(induced.bz)
    assert measured.mean() > 0.9
    error = (induced.bz - truth)[measured]
    assert np.sqrt(np.mean((error - error.mean()) ** 2)) < 1.25 * SIGMA
    assert np.std(truth) > 3 * SIGMA  # an induced map well above the noise

    inv = invert_susceptibility(induced, THICKNESS)
    assert inv.criterion == "gcv" and inv.unit == "SI" and inv.converged
    assert inv.noise == pytest.approx(SIGMA, rel=0.15)
    err = inv.values - chi
    assert np.mean(np.abs(err) < 2 * inv.sd) >= 0.90

    rng = np.random.default_rng(3)
    lam = inv.regularization
    regions = [
        ndimage.binary_dilation(labels == k, iterations=2) & np.isin(labels, (0, k))
        for k in range(1, len(PATCHES) + 1)
    ]
    noise_sums = []
    for _ in range(NOISE_DRAWS):
        pure = induced.with_bz(np.where(measured, rng.normal(size=chi.shape) * SIGMA, np.nan))
        values = invert_susceptibility(pure, THICKNESS, regularization=lam).values
        noise_sums.append([values[r].sum() for r in regions])
    sum_sd = np.std(noise_sums, axis=0, ddof=1)
    for k, region in enumerate(regions):
        true_sum = chi[region].sum()
        assert abs(inv.values[region].sum() - true_sum) < 0.10 * true_sum + 3 * sum_sd[k], k

    # the command writes an entry whose χ map is this one
    argv = ["susceptibility", str(path), "--entry", "induced", "--name", "chi",
            "--thickness-um", "30"]
    assert main(argv) == 0
    assert "wrote entry 'chi'" in capsys.readouterr().out
    with h5py.File(path, "r") as f:
        written = f["chi/chi/chi"][()]
        written_sd = f["chi/chi/errors"][()]
    # the same solve to the solver's tolerance: λ may differ in its last digits run to run, and
    # with it the conjugate-gradient iterations that reach a relative residual of 1e-5
    np.testing.assert_array_less(np.abs(written - inv.values), 1e-3 * inv.sd)
    np.testing.assert_allclose(written_sd, inv.sd, rtol=1e-6)
