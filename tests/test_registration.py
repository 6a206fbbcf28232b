"""Registration of two maps of one sample, checked on point-dipole fields (closed form)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from smm_daq.analysis.registration import (
    Registration,
    apply_registration,
    estimate_registration,
)
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

MU0 = 4e-7 * np.pi
STEP = 2e-6
HEIGHT = 10e-6


def dipoles_bz(px, py, sources, height=HEIGHT):
    """Bz at `height` (m) of point dipoles (x, y, z, mx, my, mz): the textbook closed form."""
    bz = np.zeros_like(px)
    for x0, y0, z0, mx, my, mz in sources:
        rx, ry, rz = px - x0, py - y0, height - z0
        r2 = rx**2 + ry**2 + rz**2
        bz += MU0 / (4 * np.pi) * (3 * (mx * rx + my * ry + mz * rz) * rz / r2**2.5 - mz / r2**1.5)
    return bz


def random_sources(rng, n, extent):
    return [
        (*rng.uniform(0.1, 0.9, 2) * extent, -rng.uniform(3e-6, 10e-6), *rng.normal(size=3) * 1e-12)
        for _ in range(n)
    ]


def make_pair(rng, shift, angle=0.0, noise=2e-8, nx=64, ny=56):
    x = np.arange(nx) * STEP
    y = np.arange(ny) * STEP
    sources = random_sources(rng, 25, np.array([x[-1], y[-1]]))
    px, py = np.meshgrid(x, y)
    centre = np.array([x.mean(), y.mean()])
    # the reference sees the sample moved by `shift` and turned by `angle` about the centre
    c, s = np.cos(angle), np.sin(angle)
    moved = []
    for x0, y0, z0, mx, my, mz in sources:
        vx, vy = x0 - centre[0], y0 - centre[1]
        moved.append(
            (
                c * vx - s * vy + centre[0] + shift[0],
                s * vx + c * vy + centre[1] + shift[1],
                z0,
                c * mx - s * my,
                s * mx + c * my,
                mz,
            )
        )
    ref = dipoles_bz(px, py, moved) + rng.normal(size=px.shape) * noise
    mov = dipoles_bz(px, py, sources) + rng.normal(size=px.shape) * noise
    return MapData(ref, x, y, name="ref"), MapData(mov, x, y, name="mov"), (px, py, moved)


def test_subpixel_shift_is_recovered_within_its_uncertainty():
    rng = np.random.default_rng(3)
    shift = np.array([3.37e-6, -1.71e-6])
    ref, mov, _ = make_pair(rng, shift)
    reg = estimate_registration(ref, mov)
    err = np.array(reg.shift) - shift
    assert np.all(np.abs(err) < 0.02 * STEP)
    assert np.all(np.abs(err) < 4 * np.array(reg.shift_sd))
    assert reg.pixels > 0.8 * ref.bz.size


def test_shift_sd_matches_the_scatter_over_noise_draws():
    rng = np.random.default_rng(7)
    shift = np.array([1.3e-6, 2.6e-6])
    x = np.arange(48) * STEP
    px, py = np.meshgrid(x, x)
    sources = random_sources(rng, 12, np.array([x[-1], x[-1]]))
    moved = [(s[0] + shift[0], s[1] + shift[1], *s[2:]) for s in sources]
    truth_ref, truth_mov = dipoles_bz(px, py, moved), dipoles_bz(px, py, sources)
    noise = 0.02 * truth_mov.std()
    estimates, sds = [], []
    for _ in range(12):
        ref = MapData(truth_ref + rng.normal(size=px.shape) * noise, x, x)
        mov = MapData(truth_mov + rng.normal(size=px.shape) * noise, x, x)
        reg = estimate_registration(ref, mov)
        estimates.append(reg.shift)
        sds.append(reg.shift_sd)
    scatter = np.std(estimates, axis=0, ddof=1)
    reported = np.mean(sds, axis=0)
    # 12 draws: the sample SD is within a factor ~1.6 of the truth at 95 %
    assert np.all(scatter / reported > 0.5) and np.all(scatter / reported < 2.0)
    assert np.all(np.abs(np.mean(estimates, axis=0) - shift) < 4 * reported / np.sqrt(12) + 1e-9)


def test_small_rotation_is_recovered():
    rng = np.random.default_rng(11)
    shift, angle = np.array([-2.2e-6, 0.8e-6]), 0.012
    ref, mov, _ = make_pair(rng, shift, angle=angle, nx=80, ny=80)
    reg = estimate_registration(ref, mov, rotation=True)
    assert abs(reg.rotation - angle) < max(4 * reg.rotation_sd, 5e-4)
    assert np.all(np.abs(np.array(reg.shift) - shift) < 0.05 * STEP)


def test_applied_shift_reproduces_the_shifted_field_and_handles_nan():
    rng = np.random.default_rng(5)
    shift = np.array([2.5e-6, 1.25e-6])
    ref, mov, (px, py, moved) = make_pair(rng, shift, noise=0.0)
    holes = np.zeros(mov.shape, bool)
    holes[20:24, 30:33] = True
    mov = mov.with_bz(np.where(holes, np.nan, mov.bz))
    out = apply_registration(mov, Registration(tuple(shift), (0.0, 0.0)))
    truth = dipoles_bz(px, py, moved)
    ok = np.isfinite(out.bz)
    # the pixels that came from beyond the map (first ~2 columns, first row) or next to a hole
    assert not ok[:, :1].any() and not ok[:1, :].any()
    assert not ok[21:25, 31:35].any()
    assert ok.sum() > 0.85 * ok.size
    assert np.sqrt(np.mean((out.bz[ok] - truth[ok]) ** 2)) < 4e-3 * truth.std()
    reg = estimate_registration(ref, mov)
    assert np.all(np.abs(np.array(reg.shift) - shift) < 0.02 * STEP)


def test_grids_that_differ_are_refused():
    rng = np.random.default_rng(1)
    ref, mov, _ = make_pair(rng, (0.0, 0.0))
    with pytest.raises(InputError, match="same grid"):
        estimate_registration(ref, MapData(mov.bz[:, :-1], mov.x[:-1], mov.y, name="mov"))
    with pytest.raises(InputError, match="x axes"):
        estimate_registration(ref, MapData(mov.bz, mov.x + 0.5 * STEP, mov.y, name="mov"))


@pytest.mark.parametrize("shift_px", [0.004, -0.03])
def test_a_shift_within_its_sd_of_the_edge_keeps_the_edge_pixels_near_the_truth(shift_px):
    """A shift of a few hundredths of a pixel, known to about that: the first (or last) row and
    column are sampled as the map continues, not blanked (they were: 4 % of a 45 × 45 map for
    a shift of 0.004 px), and lie as close to the moved field as the shift's SD allows."""
    rng = np.random.default_rng(11)
    shift = np.array([shift_px, shift_px]) * STEP
    sd = 0.05 * STEP  # the shift known to 5 % of a pixel: not significant
    _ref, mov, (px, py, moved) = make_pair(rng, shift, noise=0.0)
    out = apply_registration(mov, Registration(tuple(shift), (sd, sd)))
    assert np.isfinite(out.bz).all()
    truth = dipoles_bz(px, py, moved)
    edge = np.zeros(out.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    # the field moved by the SD: what the shift's uncertainty means for every pixel
    sd_moved = dipoles_bz(px - sd, py - sd, moved)
    assert np.max(np.abs(out.bz[edge] - truth[edge])) < np.max(np.abs(sd_moved - truth))


def test_a_shift_past_its_sd_still_blanks_the_pixels_it_brings_from_beyond_the_map():
    rng = np.random.default_rng(12)
    shift = np.array([0.3, -0.3]) * STEP
    _ref, mov, _ = make_pair(rng, shift, noise=0.0)
    out = apply_registration(mov, Registration(tuple(shift), (0.01 * STEP, 0.01 * STEP)))
    ok = np.isfinite(out.bz)
    assert not ok[:, 0].any() and not ok[-1, :].any()
    assert ok[1:-1, 1:-1].all()


def on_scan_grid(m: MapData) -> MapData:
    """`m` on a scan's grid 2 mm from the stage's origin (`ScanPlan`'s x0 + step · k), whose
    last point lies a round-off past (n - 1) steps of the first pair's spacing."""
    return replace(m, x=2e-3 + m.x, y=2e-3 + m.y)


@pytest.mark.parametrize(
    ("shift_px", "sd_px"),
    [
        ((0.0, 0.0), (0.0, 0.0)),  # no shift at all
        ((0.009, -0.0055), (0.03, 0.06)),  # the recipe's (0.18 ± 0.6, -0.11 ± 1.2) µm on 20 µm
        ((0.0, -0.1), (0.03, 0.06)),  # past its SD but not significant (chi-square 2.8)
        ((0.0, -0.4), (0.3, 0.3)),  # not significant, and poorly determined
    ],
)
def test_a_shift_not_significant_loses_no_pixel_on_a_scan_grid(shift_px, sd_px):
    """The recipe's 111 × 111 induced map lost its last row (12,210 of 12,321 pixels kept) to
    a shift of a few thousandths of a pixel: the edge pixels are kept, sampled on the map's
    edge, so no further from the moved field than had they not been moved."""
    rng = np.random.default_rng(21)
    shift, sd = np.array(shift_px) * STEP, np.array(sd_px) * STEP
    _ref, mov, (px, py, moved) = make_pair(rng, shift, noise=0.0, nx=45, ny=45)
    out = apply_registration(on_scan_grid(mov), Registration(tuple(shift), tuple(sd)))
    assert np.isfinite(out.bz).all()
    truth = dipoles_bz(px, py, moved)
    # no worse than the edge pixel left where it was: the shift is not told from zero
    reach = np.abs(shift) + sd
    worst = np.max(np.abs(dipoles_bz(px - reach[0], py - reach[1], moved) - truth))
    round_off = 1e-9 * np.max(np.abs(truth))
    assert np.max(np.abs(out.bz - truth)) <= worst + round_off
    # the last row, its source past the map's edge, as good as that row left unmoved
    unmoved = np.max(np.abs(mov.bz[-1] - truth[-1]))
    assert np.max(np.abs(out.bz[-1] - truth[-1])) <= unmoved * (1 + 1e-9) + round_off


@pytest.mark.parametrize(
    ("shift_px", "blank_columns", "blank_rows"),
    [
        ((0.3, -0.3), [0], [-1]),
        ((1.0, -2.0), [0], [-2, -1]),  # whole pixels: the row onto the last point is kept
        ((-0.004, 0.002), [-1], [0]),  # tiny, but known to a ten-thousandth of a pixel
    ],
)
def test_a_significant_shift_blanks_exactly_the_pixels_off_the_overlap(
    shift_px, blank_columns, blank_rows
):
    rng = np.random.default_rng(22)
    shift = np.array(shift_px) * STEP
    _ref, mov, _ = make_pair(rng, shift, noise=0.0, nx=45, ny=45)
    reg = Registration(tuple(shift), (1e-4 * STEP, 1e-4 * STEP))
    out = apply_registration(on_scan_grid(mov), reg)
    expected = np.zeros(out.shape, bool)
    expected[:, blank_columns] = True
    expected[blank_rows, :] = True
    np.testing.assert_array_equal(~np.isfinite(out.bz), expected)


def cut_off(m: MapData, rows: int, first_columns: int) -> MapData:
    """`m` as a scan cut off before its last `rows` rows, its first columns unmeasured too."""
    bz = m.bz.copy()
    bz[-rows:, :] = np.nan
    bz[:, :first_columns] = np.nan
    return m.with_bz(bz)


@pytest.mark.parametrize(
    ("shift_px", "sd_px", "blank_rows", "blank_columns"),
    [
        # not significant: towards the unmeasured rows and column, no measured pixel lost
        ((0.009, -0.0055), (0.03, 0.06), [], []),
        ((0.0, -0.1), (0.03, 0.06), [], []),
        # significant: the row and column whose sources lie between measured and unmeasured
        ((0.3, -0.3), (1e-4, 1e-4), [-4], [2]),
    ],
)
def test_unmeasured_edge_rows_blank_as_the_outer_edge_does(shift_px, sd_px, blank_rows,
                                                           blank_columns):
    """A scan cut off (its last rows unmeasured) or with unmeasured first columns: a shift
    that is not significant keeps every measured pixel next to them, as it keeps the map's
    outer edge, sampled where it was measured; the unmeasured ones stay blank."""
    rng = np.random.default_rng(23)
    shift, sd = np.array(shift_px) * STEP, np.array(sd_px) * STEP
    _ref, mov, (px, py, moved) = make_pair(rng, shift, noise=0.0, nx=30, ny=30)
    mov = cut_off(on_scan_grid(mov), rows=3, first_columns=2)
    out = apply_registration(mov, Registration(tuple(shift), tuple(sd)))
    expected = ~np.isfinite(mov.bz)
    expected[blank_rows, :] = True
    expected[:, blank_columns] = True
    np.testing.assert_array_equal(~np.isfinite(out.bz), expected)
    if not blank_rows:  # the last measured row as good as that row left unmoved
        truth = dipoles_bz(px, py, moved)[-4, 2:]
        unmoved = np.max(np.abs(mov.bz[-4, 2:] - truth))
        assert np.max(np.abs(out.bz[-4, 2:] - truth)) <= unmoved * (1 + 1e-9) + 1e-9 * np.max(
            np.abs(truth))
