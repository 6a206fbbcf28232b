"""Tile geometry, grain ownership and the margin rule of the tiled MMT inversion."""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.mmt.tiles.layout import plan_tiles
from smm_daq.analysis.mmt.tiles.margin import information_beyond, margin_factor, margin_for
from smm_daq.errors import InputError

UM = 1e-6


def _axes(n: int = 101, step: float = 2 * UM) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(n) * step
    return a, a.copy()


def test_cores_partition_the_scan_and_windows_add_the_margin() -> None:
    x, y = _axes()  # 0..200 µm
    layout = plan_tiles(x, y, tile=70 * UM, margin=15 * UM, band=5 * UM)
    assert len(layout.tiles) == 9  # ceil(200 / 70) = 3 per axis
    counts = np.zeros((y.size, x.size), dtype=int)
    for t in layout.tiles:
        x0, x1, y0, y1 = t.core
        inside = ((x[None, :] >= x0) & (x[None, :] < x1 + (x1 == x[-1]) * UM)
                  & (y[:, None] >= y0) & (y[:, None] < y1 + (y1 == y[-1]) * UM))
        counts += inside
        wx0, wx1, wy0, wy1 = t.window
        assert wx0 == pytest.approx(max(x0 - 15 * UM, 0.0))
        assert wy1 == pytest.approx(min(y1 + 15 * UM, y[-1]))
        # the window's sensors are exactly the grid points inside it
        assert x[t.cols][0] >= wx0 - 1e-12 and x[t.cols][-1] <= wx1 + 1e-12
        assert t.cols.start == 0 or x[t.cols.start - 1] < wx0
        assert t.interior == (wx0 > 0, wx1 < x[-1], wy0 > 0, wy1 < y[-1])
    assert np.all(counts == 1)


def test_each_grain_is_kept_by_the_tile_whose_core_holds_it_a_margin_from_its_edges() -> None:
    x, y = _axes()
    margin = 20 * UM
    layout = plan_tiles(x, y, tile=60 * UM, margin=margin, band=8 * UM)
    rng = np.random.default_rng(3)
    xy = rng.uniform(-10 * UM, 210 * UM, (500, 2))  # some beyond the scan's edges
    owner = layout.owners(xy)
    for g, k in enumerate(owner):
        t = layout.tiles[k]
        x0, x1, y0, y1 = t.core
        clipped = np.clip(xy[g], [x[0], y[0]], [x[-1], y[-1]])
        assert x0 - 1e-12 <= clipped[0] <= x1 + 1e-12 and y0 - 1e-12 <= clipped[1] <= y1 + 1e-12
        assert t.edge_distance(xy[g:g + 1])[0] >= margin - 1e-12
        assert g in t.unknowns(xy, layout.band)


def test_unknowns_reach_the_band_beyond_interior_edges_only() -> None:
    x, y = _axes()
    layout = plan_tiles(x, y, tile=100 * UM, margin=10 * UM, band=5 * UM)
    t = next(t for t in layout.tiles if t.index == (0, 0))  # window 0..110 µm on both axes
    pts = np.array([[114, 50], [116, 50], [50, 114], [-30, 50], [50, -30], [116, 116]]) * UM
    assert set(t.unknowns(pts, layout.band)) == {0, 2, 3, 4}


def test_a_margin_covering_the_scan_gives_one_whole_tile() -> None:
    x, y = _axes()
    layout = plan_tiles(x, y, tile=50 * UM, margin=300 * UM, band=0.0)
    assert len(layout.tiles) == 1
    assert layout.tiles[0].cols == slice(0, x.size) and not any(layout.tiles[0].interior)


def test_bad_tile_size_is_refused() -> None:
    x, y = _axes()
    with pytest.raises(InputError, match="tile size"):
        plan_tiles(x, y, tile=0.0, margin=1e-6, band=0.0)


def test_information_beyond_matches_a_sum_over_a_sensor_grid() -> None:
    """Σ Bz² of a point dipole at depth D over a fine sensor plane, outside radius k D."""
    D = 1.0
    h = 0.04
    a = np.arange(-30, 30 + h / 2, h)
    X, Y = np.meshgrid(a, a)
    R2 = X**2 + Y**2 + D**2
    fields = {"x": 3 * D * X / R2**2.5, "z": (2 * D**2 - X**2 - Y**2) / R2**2.5}
    for k in (1.0, 2.0, 3.0):
        outside = np.hypot(X, Y) > k * D
        worst = max(float(np.sum(f[outside] ** 2) / np.sum(f**2)) for f in fields.values())
        assert information_beyond(k) == pytest.approx(worst, rel=2e-2)


def test_margin_rule_keeps_the_information_loss_at_half_a_percent() -> None:
    k = margin_factor()
    assert information_beyond(k) == pytest.approx(0.005, rel=1e-6)
    assert margin_for(45 * UM, 5 * UM) == pytest.approx(k * 50 * UM)
