"""Susceptibility and magnetization maps of a thin layer, against the forward model.

The synthetic maps are built cell by cell with the closed-form cuboid field
(`smm_daq.analysis.forward.cuboid_bz`): the field of one cell at every sensor offset, summed
over the cells by a (linear, not periodic) convolution, which is exact for a layer of equal
cells magnetized along one direction.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import fftconvolve

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.susceptibility import invert_magnetization, invert_susceptibility
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

MU0 = 4e-7 * np.pi
STEP = 10e-6


def layer_bz(mag, direction, *, height, thickness, sensor_size):
    """Bz (T) over each cell centre of a layer of cells STEP × STEP × thickness, M = mag · u."""
    ny, nx = mag.shape
    ox, oy = np.meshgrid(np.arange(-(nx - 1), nx) * STEP, np.arange(-(ny - 1), ny) * STEP)
    sensors = np.column_stack([ox.ravel(), oy.ravel(), np.full(ox.size, height)])
    cell = np.array([[0.0, 0.0, -thickness / 2, STEP, STEP, thickness]])
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    kernel = cuboid_bz(sensors, cell, u[None, :], sensor_size=sensor_size).reshape(ox.shape)
    return fftconvolve(mag, kernel, mode="full")[ny - 1 : 2 * ny - 1, nx - 1 : 2 * nx - 1]


def grains(rng, n, count=7):
    """χ (SI) of round grains of 3 to 6 cells radius on a clean matrix."""
    x = np.arange(n)
    px, py = np.meshgrid(x, x)
    chi = np.zeros((n, n))
    labels = np.zeros((n, n), int)
    for g in range(1, count + 1):
        cx, cy = rng.uniform(0.2, 0.8, 2) * n
        inside = (px - cx) ** 2 + (py - cy) ** 2 < rng.uniform(3, 6) ** 2
        chi[inside] = rng.uniform(0.2, 2.0)
        labels[inside] = g
    return chi, labels


def induced_map(chi, field, *, height, thickness, size, noise, rng, leak=0.0):
    h = np.linalg.norm(field) / MU0
    bz = layer_bz(chi * h, field, height=height, thickness=thickness, sensor_size=size)
    x = np.arange(chi.shape[1]) * STEP
    y = np.arange(chi.shape[0]) * STEP
    bz = bz + leak + rng.normal(size=bz.shape) * noise
    return MapData(bz, x, y, height=height, sensor_size=size, applied_field=field, name="induced")


FIELDS = [np.array([60e-6, -30e-6, 20e-6]), np.array([0.0, -50e-6, 0.0])]


@pytest.mark.parametrize("field", FIELDS, ids=["tilted", "in-plane"])
def test_grains_are_recovered_within_the_uncertainty(field):
    rng = np.random.default_rng(4)
    chi, labels = grains(rng, 64)
    noise = 1e-7
    m = induced_map(
        chi,
        field,
        height=20e-6,
        thickness=20e-6,
        size=(5e-6, 5e-6),
        noise=noise,
        rng=rng,
        leak=2e-6,
    )
    inv = invert_susceptibility(m, 20e-6, noise=noise)
    assert inv.criterion == "discrepancy" and inv.unit == "SI"
    err = inv.values - chi
    # pixel by pixel mostly within the posterior SD (grains with sharp edges are not the
    # Gaussian field the prior assumes, so not quite 95 % within 2 SD)
    assert np.mean(np.abs(err) < 2 * inv.sd) > 0.85
    assert np.sqrt(np.mean(err**2)) < 0.07 * chi.max()
    # each grain's integrated χ, over the grain and a 3-cell ring around it (the blur)
    for g in range(1, labels.max() + 1):
        region = ndimage.binary_dilation(labels == g, iterations=3) & np.isin(labels, (0, g))
        assert inv.values[region].sum() == pytest.approx(chi[region].sum(), rel=0.25)
    assert inv.offset == pytest.approx(2e-6, abs=5 * noise)
    assert inv.residual_rms == pytest.approx(noise, rel=0.15)


def test_posterior_sd_matches_the_scatter_when_the_prior_is_true():
    """χ drawn from the Tikhonov prior itself: the errors must then have the stated SD."""
    rng = np.random.default_rng(9)
    field = np.array([30e-6, 0.0, 40e-6])
    h = np.linalg.norm(field) / MU0
    prior_sd, noise = 0.3, 2e-7
    lam = (noise / (prior_sd * h)) ** 2
    errors, sds = [], []
    for _ in range(3):
        chi = rng.normal(size=(56, 56)) * prior_sd  # white: the prior of ℓ = 0
        m = induced_map(
            chi, field, height=12e-6, thickness=10e-6, size=(0.0, 0.0), noise=noise, rng=rng
        )
        inv = invert_susceptibility(
            m, 10e-6, noise=noise, regularization=lam, correlation_length=0.0
        )
        inner = (slice(12, -12), slice(12, -12))
        errors.append((inv.values - chi)[inner])
        sds.append(inv.sd[inner])
    stated = float(np.mean(sds))
    assert stated < 0.7 * prior_sd  # the data do constrain χ here
    assert np.std(errors) == pytest.approx(stated, rel=0.1)
    # under a gap in the map the stated SD rises towards the prior's
    holes = m.bz.copy()
    holes[20:34, 20:34] = np.nan
    gap = invert_susceptibility(
        m.with_bz(holes), 10e-6, noise=noise, regularization=lam, correlation_length=0.0
    )
    assert gap.sd[27, 27] > 1.2 * stated
    assert gap.sd[27, 27] <= prior_sd * 1.001


def test_gcv_finds_the_noise_and_a_similar_regularization():
    rng = np.random.default_rng(5)
    chi, _ = grains(rng, 56)
    field = np.array([0.0, 40e-6, 30e-6])
    noise = 2e-7
    m = induced_map(
        chi, field, height=20e-6, thickness=20e-6, size=(0.0, 0.0), noise=noise, rng=rng
    )
    by_gcv = invert_susceptibility(m, 20e-6)
    by_noise = invert_susceptibility(m, 20e-6, noise=noise)
    assert by_gcv.criterion == "gcv"
    assert by_gcv.noise == pytest.approx(noise, rel=0.2)
    assert 0.1 < by_gcv.regularization / by_noise.regularization < 10


def test_remanence_of_known_direction_gives_a_magnetization_map():
    rng = np.random.default_rng(6)
    chi, _ = grains(rng, 56)
    mag = chi * 500.0  # A/m, an IRM along +x
    bz = layer_bz(mag, (1, 0, 0), height=20e-6, thickness=20e-6, sensor_size=(0.0, 0.0))
    noise = 1e-7
    x = np.arange(56) * STEP
    m = MapData(
        bz + rng.normal(size=bz.shape) * noise,
        x,
        x,
        height=20e-6,
        sensor_size=(0, 0),
        applied_field=np.zeros(3),
        name="irm",
    )
    inv = invert_magnetization(m, np.array([1.0, 0.0, 0.0]), 20e-6, noise=noise)
    assert inv.unit == "A/m"
    err = inv.values - mag
    assert np.mean(np.abs(err) < 2 * inv.sd) > 0.85
    assert np.sqrt(np.mean(err**2)) < 0.07 * mag.max()


def test_support_mask_and_bad_input():
    rng = np.random.default_rng(8)
    chi, _ = grains(rng, 40, count=3)
    field = np.array([0.0, 50e-6, 0.0])
    m = induced_map(chi, field, height=20e-6, thickness=20e-6, size=(0.0, 0.0), noise=1e-7, rng=rng)
    support = np.zeros(m.shape, bool)
    support[5:35, 5:35] = True
    inv = invert_susceptibility(m, 20e-6, noise=1e-7, support=support)
    assert np.isnan(inv.values[~support]).all() and np.isfinite(inv.values[support]).all()
    with pytest.raises(InputError, match="no applied field"):
        invert_susceptibility(m.with_bz(m.bz, applied_field=None), 20e-6)
    with pytest.raises(InputError, match="zero field"):
        invert_susceptibility(m.with_bz(m.bz, applied_field=np.zeros(3)), 20e-6)
    with pytest.raises(InputError, match="sensor height"):
        invert_susceptibility(m.with_bz(m.bz, height=None), 20e-6)
    with pytest.raises(InputError, match="thickness"):
        invert_susceptibility(m, -1.0)
    with pytest.raises(InputError, match="discrepancy principle needs"):
        invert_susceptibility(m, 20e-6, criterion="discrepancy")



def test_gcv_fallen_to_its_floor_on_a_noisy_map_is_refused():
    """With ℓ = 0 under a sensor of finite area, GCV's curve falls on towards λ = 0: the
    layer would fit the noise (χ tens of times the true one, its SD saying nothing of it)."""
    rng = np.random.default_rng(3)
    chi, _ = grains(rng, 32, count=3)
    field = np.array([0.0, 0.0, 40e-6])
    geometry = {"height": 20e-6, "thickness": 6e-6, "size": (5e-6, 5e-6)}
    noise = 1e-7
    m = induced_map(chi, field, noise=noise, rng=rng, **geometry)
    with pytest.raises(InputError, match=r"fell to the lower end of its search.*--noise-nT"):
        invert_susceptibility(m, 6e-6, correlation_length=0.0)
    given = invert_susceptibility(m, 6e-6, noise=noise, correlation_length=0.0)
    assert np.nanmax(given.values) < 2 * chi.max()
    # a noiseless map may take the floor: there is no noise to fit
    exact = induced_map(chi, field, noise=0.0, rng=rng, **geometry)
    assert invert_susceptibility(exact, 6e-6, correlation_length=0.0).criterion == "gcv"


def test_gcv_asked_for_beside_a_noise_given_is_refused_at_its_floor_too():
    """--criterion gcv with --noise-nT: the noise given stood in for GCV's σ in the check, so
    the true noise let a layer fitted to the noise through (χ 12 times the true one), and a
    lower one was refused as "σ by gcv", asking for the --noise-nT already given."""
    rng = np.random.default_rng(3)
    chi, _ = grains(rng, 32, count=3)
    geometry = {"height": 20e-6, "thickness": 6e-6, "size": (5e-6, 5e-6)}
    m = induced_map(chi, np.array([0.0, 0.0, 40e-6]), noise=1e-7, rng=rng, **geometry)
    for given in (1e-7, 1e-8):
        with pytest.raises(InputError, match=r"fell to the lower end of its search.*expected "
                                             r"the discrepancy principle for the noise given "
                                             r"\(--criterion discrepancy"):
            invert_susceptibility(m, 6e-6, noise=given, criterion="gcv", correlation_length=0.0)
