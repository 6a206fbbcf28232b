"""Background, field leakage, line levelling, noise floor, masks and crop."""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.background import border_mask, remove_background, remove_field_leakage
from smm_daq.analysis.crop import crop
from smm_daq.analysis.levelling import level_lines
from smm_daq.analysis.masks import apply_mask, polygon_mask, rectangle_mask
from smm_daq.analysis.noise import (
    bends_at_pixel_scale,
    noise_from_repeats,
    noise_rms,
    white_noise_floor,
)
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6


def grid_map(bz=None, n=(40, 50), **kw):
    ny, nx = n
    x = np.arange(nx) * 5 * UM
    y = np.arange(ny) * 5 * UM
    return MapData(np.zeros(n) if bz is None else bz, x, y, name="m", **kw)


def sample_disc(m):
    px, py = np.meshgrid(m.x, m.y)
    r = np.hypot(px - m.x.mean(), py - m.y.mean())
    return np.where(r < 60 * UM, 1e-6 * np.cos(r / (20 * UM)), 0.0), r < 70 * UM


def test_plane_fitted_on_background_only_is_removed():
    m = grid_map()
    signal, on_sample = sample_disc(m)
    px, py = np.meshgrid(m.x - m.x.mean(), m.y - m.y.mean())
    plane = 3e-7 + 2e-3 * px - 1e-3 * py
    fit = remove_background(m.with_bz(signal + plane), ~on_sample, model="plane")
    np.testing.assert_allclose(fit.map.bz, signal, atol=1e-15)
    assert fit.coefficients == pytest.approx((3e-7, 2e-3, -1e-3))
    # an offset alone leaves the tilt
    off = remove_background(m.with_bz(signal + plane), ~on_sample, model="offset")
    assert np.abs(off.map.bz - signal).max() > 1e-7
    with pytest.raises(InputError, match="expected at least 3"):
        remove_background(m, np.zeros(m.shape, bool), model="plane")
    with pytest.raises(InputError, match="background model"):
        remove_background(m, ~on_sample, model="cubic")


def test_field_leakage_from_metadata_or_from_background():
    m = grid_map(applied_field=np.array([0.0, 40e-6, 2e-6]))
    signal, on_sample = sample_disc(m)
    seen = m.with_bz(signal + 2.05e-6)  # the sensor read a little more than the request
    out, leak = remove_field_leakage(seen)
    assert leak == 2e-6
    np.testing.assert_allclose(out.bz, signal + 0.05e-6, atol=1e-18)
    out, leak = remove_field_leakage(seen, ~on_sample)
    assert leak == pytest.approx(2.05e-6)
    np.testing.assert_allclose(out.bz, signal, atol=1e-15)
    with pytest.raises(InputError, match="no applied field"):
        remove_field_leakage(seen.with_bz(seen.bz, applied_field=None))


def test_line_levelling_removes_drift_but_not_the_sample():
    m = grid_map()
    signal, on_sample = sample_disc(m)
    rng = np.random.default_rng(0)
    drift = np.cumsum(rng.normal(size=m.shape[0])) * 1e-8
    slope = rng.normal(size=m.shape[0]) * 1e-4
    xc = m.x - m.x.mean()
    data = signal + drift[:, None] + slope[:, None] * xc[None, :]
    lev = level_lines(m.with_bz(data), ~on_sample, order=1)
    np.testing.assert_allclose(lev.map.bz, signal, atol=1e-15)
    assert not lev.interpolated.any()
    # order 0 with lines that cross only the sample: filled in from neighbours
    mask = ~on_sample
    mask[10:13] = False
    lev0 = level_lines(m.with_bz(signal + drift[:, None]), mask)
    assert lev0.interpolated[10:13].all()
    np.testing.assert_allclose(lev0.map.bz[:10], signal[:10], atol=1e-15)
    np.testing.assert_allclose(lev0.offsets[11], np.interp(11, [9, 13], drift[[9, 13]]))


def test_noise_floor_from_background_and_from_repeats():
    rng = np.random.default_rng(1)
    sigma = 2.5e-7
    m = grid_map(n=(80, 80))
    signal, on_sample = sample_disc(m)
    estimates, repeats = [], []
    for _ in range(20):
        a = m.with_bz(signal * 100 + 1e-6 + rng.normal(size=m.shape) * sigma)
        b = m.with_bz(signal * 100 + 3e-6 + rng.normal(size=m.shape) * sigma)
        estimates.append(noise_rms(a, ~on_sample))
        repeats.append(noise_from_repeats(a, b))
    # unbiased to within the scatter of the 20 estimates
    assert np.mean(estimates) == pytest.approx(sigma, rel=0.02)
    assert np.mean(repeats) == pytest.approx(sigma, rel=0.02)
    with pytest.raises(InputError, match="same grid"):
        noise_from_repeats(a, MapData(a.bz[1:], a.x, a.y[1:], name="other"))


def test_a_repeat_identical_to_its_scan_is_refused_not_read_as_no_noise():
    """Two identical maps (a copy of an entry; two scans of a simulator that drew the same
    noise for both) gave "noise: 0 nT RMS", a noise floor a paper could quote; only the
    pixels compared count (a NaN elsewhere aside)."""
    rng = np.random.default_rng(2)
    a = grid_map(rng.normal(size=(40, 50)) * 1e-7)
    b = MapData(np.where(np.eye(40, 50, dtype=bool), np.nan, a.bz), a.x, a.y, name="again")
    with pytest.raises(InputError, match=r"'m' and 'again' are identical at every pixel "
                                         r"compared.*expected a repeat measured on its own"):
        noise_from_repeats(a, b)
    b.bz[5, 7] += 1e-12
    assert noise_from_repeats(a, b) > 0


def test_a_repeat_offset_from_its_scan_by_a_constant_is_refused_not_read_as_no_noise():
    """The noise is the spread of the difference about its mean: two maps one constant apart
    at every pixel (values exact in binary, as a digitizer's counts scaled by a power of two)
    gave "noise: 0 nT" as identical ones did."""
    rng = np.random.default_rng(4)
    a = grid_map(rng.integers(-1000, 1000, size=(40, 50)) * 2.0 ** -30)
    b = MapData(a.bz + 2.0 ** -27, a.x, a.y, name="offset")
    assert np.ptp(a.bz - b.bz) == 0  # exactly one constant apart
    with pytest.raises(InputError, match=r"'m' and 'offset' differ by the same -7\.451 nT at "
                                         r"every pixel compared.*no noise \(0 nT\)"):
        noise_from_repeats(a, b)


def test_grids_that_differ_are_refused_saying_where_each_lies():
    """A flown scan over 1400 µm and a stepped one over 1600 µm about the same centre, 40 µm
    apart: the refusal gave their shapes only, not that their points lie 20 µm apart (so no
    crop of the larger lands on the other's points)."""
    from smm_daq.analysis.grids import require_same_grid

    def grid(name: str, first_um: float, n: int) -> MapData:
        u = (first_um + np.arange(n) * 40) * UM
        return MapData(np.zeros((n, n)), u, u, name=name)

    fly, rem = grid("fly", 200, 36), grid("rem", 100, 41)
    with pytest.raises(InputError) as refused:
        require_same_grid(fly, rem)
    assert str(refused.value).endswith(
        "expected two scans on the same grid ('fly': x 200 to 1600, y 200 to 1600 µm, step "
        "40 × 40 µm; 'rem': x 100 to 1700, y 100 to 1700 µm, step 40 × 40 µm)")
    with pytest.raises(InputError, match=r"differ by up to 20 µm; expected two scans on the "
                                         r"same grid \('fly': x 200 to 1600.*'rem': x 220 "):
        require_same_grid(fly, grid("rem", 220, 36))


def dense_dipoles_bz(n: int, per_pixel: float, seed: int) -> np.ndarray:
    """Bz on an n × n grid of unit step over random dipoles 2 to 32 steps below it, from the
    point dipole's closed form Bz ∝ 3 z (m·r) / r⁵ − m_z / r³, scaled to a peak of 1 µT:
    a dense sample whose field bends at the pixel scale, as a scan 1 µm above grains a few
    µm apart sees it."""
    rng = np.random.default_rng(seed)
    k = int(per_pixel * n * n)
    pos = np.column_stack([rng.uniform(-5, n + 5, (k, 2)), -2 - rng.uniform(0, 30, k)])
    mom = rng.normal(0, 1, (k, 3))
    gx, gy = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    bz = np.zeros((n, n))
    for p, m in zip(pos, mom, strict=True):
        r = np.stack([gx - p[0], gy - p[1], np.full_like(gx, -p[2])])
        d = np.sqrt((r**2).sum(0))
        bz += 3 * r[2] * np.tensordot(m, r, 1) / d**5 - m[2] / d**3
    return bz * 1e-6 / np.abs(bz).max()


def second_difference_floor(bz: np.ndarray) -> float:
    """The estimate a 2nd difference gives (RMS σ √6 for white noise): the comparison."""
    d2 = (bz[:, :-2] - 2 * bz[:, 1:-1] + bz[:, 2:]).ravel()
    return float(np.median(np.abs(d2)) / 0.6745 / np.sqrt(6))


def test_white_noise_floor_of_one_map():
    """Unbiased for white noise under a smooth field. Over a dense sample no one map can
    tell the field's bends from noise, so it reads high; but far less than a 2nd difference
    does (3.9 times the noise here, against 1.5)."""
    rng = np.random.default_rng(3)
    x = np.linspace(-1, 1, 200)
    smooth = 5e-6 * np.add.outer(x**2, np.sin(x))
    sigma = 0.25e-6
    draws = [white_noise_floor(smooth + rng.normal(0, sigma, smooth.shape))
             for _ in range(10)]
    # the MAD of 200 × 194 differences scatters by about 1 %: the mean of 10 within 1.5 %
    assert np.mean(draws) == pytest.approx(sigma, rel=0.015)

    sigma = 1e-9
    dense = dense_dipoles_bz(120, per_pixel=0.3, seed=4) + rng.normal(0, sigma, (120, 120))
    assert second_difference_floor(dense) > 3 * sigma
    assert sigma < white_noise_floor(dense) < 1.6 * sigma


def test_a_field_that_bends_at_the_pixel_scale_is_told_and_white_noise_never():
    """Where the field bends at the pixel scale the floor reads several times σ and is said
    to be an upper bound; white noise of known σ, alone or under a smooth field, at the map
    sizes where its 4th- and 6th-difference floors scatter most and least, never is."""
    rng = np.random.default_rng(7)
    sigma = 1e-10
    dense = dense_dipoles_bz(40, per_pixel=0.3, seed=4) + rng.normal(0, sigma, (40, 40))
    assert white_noise_floor(dense) > 2.5 * sigma
    assert bends_at_pixel_scale(dense)
    x = np.linspace(-1, 1, 60)
    smooth = 5e-6 * np.add.outer(x**2, np.sin(x))
    told = [bends_at_pixel_scale(base[:ny, :nx] + rng.normal(0, 0.25e-6, (ny, nx)))
            for ny, nx in ((12, 12), (6, 60), (60, 60)) for base in (0 * smooth, smooth)
            for _ in range(40)]  # over the threshold: under 1 white-noise map in 1,000
    assert not any(told)
    assert not bends_at_pixel_scale(dense[:, :6])  # lines too short to tell


def test_white_noise_floor_of_short_lines_and_gaps():
    rng = np.random.default_rng(5)
    sigma = 1e-7
    short = rng.normal(0, sigma, (400, 4))  # lines of 4 points: 3rd differences
    assert white_noise_floor(short) == pytest.approx(sigma, rel=0.1)
    gaps = rng.normal(0, sigma, (100, 100))
    gaps[::3, 40:60] = np.nan  # unmeasured points drop only the differences that touch them
    assert white_noise_floor(gaps) == pytest.approx(sigma, rel=0.05)
    assert np.isnan(white_noise_floor(np.zeros((50, 2))))  # no 2nd difference in 2 points
    assert np.isnan(white_noise_floor(np.full((5, 5), np.nan)))



def test_white_noise_floor_ignores_offsets_between_lines():
    """Each line's own offset (drift between lines, levelled later) is not pixel noise: the
    differences run along the lines, where an offset cancels; across them it would read as
    noise of about the offsets' SD (here 30 times σ)."""
    rng = np.random.default_rng(6)
    sigma = 1e-8
    bz = rng.normal(0, sigma, (120, 90)) + rng.normal(0, 30 * sigma, (120, 1))
    assert white_noise_floor(bz) == pytest.approx(sigma, rel=0.05)

def test_masks_crop_and_their_errors():
    m = grid_map()
    square = np.array([[20, 20], [80, 20], [80, 60], [20, 60]]) * UM
    poly = polygon_mask(m, square)
    rect = rectangle_mask(m, (20 * UM, 80 * UM), (20 * UM, 60 * UM))
    # pixel centres on the square's lower-left edges count as inside, upper-right as outside
    assert poly.sum() == 12 * 8 and rect.sum() == 13 * 9 and not (poly & ~rect).any()
    triangle = np.array([[0, 0], [200, 0], [0, 150]]) * UM
    px, py = np.meshgrid(m.x, m.y)
    inside = px / (200 * UM) + py / (150 * UM) < 1
    edge = np.abs(px / (200 * UM) + py / (150 * UM) - 1) < 0.03
    assert (polygon_mask(m, triangle) == inside)[~edge].all()
    frame = border_mask(m, 10 * UM)
    assert frame[:2].all() and frame[:, -2:].all() and not frame[2:-2, 2:-2].any()
    blank = apply_mask(m.with_bz(np.ones(m.shape)), rect)
    assert np.isnan(blank.bz[~rect]).all() and (blank.bz[rect] == 1).all()
    c = crop(
        m.with_bz(np.arange(m.bz.size, dtype=float).reshape(m.shape)),
        (20 * UM, 40 * UM),
        (10 * UM, 15 * UM),
    )
    assert c.shape == (2, 5) and c.x[0] == pytest.approx(20 * UM) and c.bz[0, 0] == 2 * 50 + 4
    with pytest.raises(InputError, match="holds no pixel"):
        crop(m, (1.0, 2.0), (0.0, 1.0))
    with pytest.raises(InputError, match="at least 3"):
        polygon_mask(m, square[:2])
    with pytest.raises(InputError, match="shape"):
        apply_mask(m, np.ones((3, 3), bool))


def test_border_at_least_half_the_map_wide_is_refused_not_inverted():
    # 50 × 40 pixels of 5 µm: x 0..245 µm, y 0..195 µm
    m = grid_map()
    px, py = np.meshgrid(m.x, m.y)
    # 90 µm: a true frame around the rectangle x 90..155 µm, y 90..105 µm
    inner = (px >= 90 * UM) & (px <= 155 * UM) & (py >= 90 * UM) & (py <= 105 * UM)
    assert inner.sum() == 14 * 4 and (border_mask(m, 90 * UM) == ~inner).all()
    # 110 µm: the y frames overlap (110 > 195 - 110), so the frame is every pixel; the old
    # mask took the strip x 110..135 µm as the sample, silently
    # 200 µm: wider than the map; the old mask was empty ("covers no pixel")
    for width in (110, 200):
        with pytest.raises(InputError, match=f"border {width} µm wide covers the whole"):
            border_mask(m, width * UM)


def test_crop_and_rectangles_include_pixels_on_their_ends_despite_rounding():
    """A scan's grid is x0 + step·i in metres, so the pixel a user names as 12000 µm is
    stored as 0.011999999999999999 m: `crop --x-um 12000,13000` must still keep it, as it
    keeps the one at 13000 µm (51 pixels at 20 µm, not 50)."""
    x = 11400 * UM + 20 * UM * np.arange(111)
    assert x[30] < 12000 * UM  # the rounding this test is about
    m = MapData(np.zeros((111, 111)), x, x.copy(), name="scan")
    c = crop(m, (12000 * UM, 13000 * UM), (12000 * UM, 13000 * UM))
    assert c.shape == (51, 51)
    assert c.x[0] == pytest.approx(12000 * UM) and c.x[-1] == pytest.approx(13000 * UM)
    rect = rectangle_mask(m, (12000 * UM, 13000 * UM), (12000 * UM, 13000 * UM))
    assert rect.sum() == 51 * 51
    # a pixel a nanometre outside the range stays out
    assert crop(m, (12000.001 * UM, 13000 * UM), (12000 * UM, 13000 * UM)).shape == (51, 50)


def test_a_crop_of_only_unmeasured_pixels_is_refused():
    """The lines an aborted scan never measured are NaN: a crop of them alone would be an
    entry that every later command refuses, so the crop refuses it itself."""
    m = grid_map()
    bz = np.zeros(m.shape)
    bz[20:] = np.nan  # lines 20 and on not measured
    m = m.with_bz(bz)
    with pytest.raises(InputError, match="holds no measured pixel of 'm'"):
        crop(m, (0.0, 50 * UM), (110 * UM, 150 * UM))
    assert crop(m, (0.0, 50 * UM), (90 * UM, 150 * UM)).shape == (13, 11)
