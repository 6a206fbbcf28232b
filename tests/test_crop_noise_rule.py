"""`--crop-to-scan` keeps a grain when the largest field it could put on the scans, magnetized
to magnetite's saturation in the worst direction, reaches a tenth of the noise: the bound
checked against choclo's dipole, and the rule against the depth-plus-height reach it replaced
(which kept a faint speck far out and dropped a large grain whose field crossed the edge)."""

from __future__ import annotations

from pathlib import Path

import choclo.dipole
import numpy as np
import pytest

from smm_daq.analysis.mmt.formats import dragonfly
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NT = 1e-9
WINDOW = (0.0, 50 * UM, 0.0, 40 * UM)


def _brute_largest(pos: np.ndarray, vol: float, height: float) -> float:
    """max |Bz| over a fine grid of the window's sensor centres and over moment directions,
    by choclo: the largest over directions of m·g is |m| |g|, g each component's Bz per unit
    moment, so three unit moments per point give it."""
    xs = np.linspace(WINDOW[0], WINDOW[1], 201)
    ys = np.linspace(WINDOW[2], WINDOW[3], 161)
    X, Y = np.meshgrid(xs, ys)
    bz = np.vectorize(choclo.dipole.magnetic_u)
    g = np.stack([bz(X, Y, height, *pos, *unit) for unit in np.eye(3)])
    return float(np.max(np.linalg.norm(g, axis=0)) * dragonfly.CROP_MAGNETIZATION * vol)


@pytest.mark.parametrize("pos_um", [(20.0, 20.0, -5.0),    # under the scan
                                    (80.0, 20.0, -2.0),    # beyond x1, shallow
                                    (-30.0, 70.0, -40.0),  # beyond a corner, deep
                                    (25.0, 41.0, -0.5)])   # just beyond y1
def test_the_largest_field_is_choclos_largest_over_the_window_and_directions(pos_um) -> None:
    pos = np.array(pos_um) * UM
    vol, height = 8 * UM**3, 30 * UM
    ours = dragonfly.largest_field(pos[None], np.array([vol]), WINDOW, height)[0]
    brute = _brute_largest(pos, vol, height)
    assert brute <= ours * (1 + 1e-9)  # a bound: nowhere larger
    assert brute == pytest.approx(ours, rel=2e-3)  # and reached (on the grid, nearly)


def _components(path: Path, rows: list[tuple[int, float, float, float, float]]) -> None:
    """A Dragonfly export of (label, x, y, CT z in µm, volume in µm³), the top at CT z 150."""
    path.write_text("Label Index;Voxel count;Volume (µm³);Center Of Mass X (µm);"
                    "Center Of Mass Y (µm);Center Of Mass Z (µm)\n"
                    + "".join(f"{n};100;{v};{x};{y};{z}\n" for n, x, y, z, v in rows),
                    encoding="utf-8")


def test_the_crop_keeps_what_could_be_seen_above_the_noise(tmp_path: Path) -> None:
    """At 100 µm above the top with σ 250 nT: a 1,000 µm³ grain 300 µm beyond the edge could
    put 1.7 µT on it (7 times σ), and the old reach (its depth plus the height, 110 µm)
    dropped it; a 0.01 µm³ speck 50 µm beyond, within the old reach, could put 0.5 nT there
    at most, a five-hundredth of σ, and was kept; a 1 µm³ grain under the scan (72 nT at
    most) is kept."""
    path = tmp_path / "cc.csv"
    _components(path, [(1, 20, 20, 140, 1.0),       # under the scan, 10 µm deep
                       (2, 350, 20, 140, 1000.0),   # 300 µm beyond x1, 10 µm deep, large
                       (3, 100, 20, 140, 0.01)])    # 50 µm beyond x1, 10 µm deep, a speck
    noise = dragonfly.DragonflyOptions(z_top_mm=0.15, crop=WINDOW, crop_height=100 * UM,
                                       crop_noise=250 * NT)
    assert dragonfly.read_dragonfly(path, noise).labels.tolist() == [1, 2]
    reach = dragonfly.DragonflyOptions(z_top_mm=0.15, crop=WINDOW, crop_height=100 * UM)
    assert dragonfly.read_dragonfly(path, reach).labels.tolist() == [1, 3]  # results before
    quiet = dragonfly.DragonflyOptions(z_top_mm=0.15, crop=WINDOW, crop_height=100 * UM,
                                       crop_noise=1e-3 * NT)  # then the speck is seen too
    assert dragonfly.read_dragonfly(path, quiet).labels.tolist() == [1, 2, 3]


def test_the_crop_of_scans_takes_the_nearest_scan_and_the_least_noise() -> None:
    rng = np.random.default_rng(3)
    x, y = np.arange(30) * 2 * UM, np.arange(20) * 2 * UM
    low = MapData(bz=40 * NT * rng.standard_normal((20, 30)), x=x, y=y, height=3 * UM,
                  name="low")
    high = MapData(bz=10 * NT * rng.standard_normal((20, 30)), x=x + 4 * UM, y=y,
                   height=8 * UM, name="high")
    crop = dragonfly.scan_crop([low, high])
    assert crop["crop"] == (0.0, 62 * UM, 0.0, 38 * UM)
    assert crop["crop_height"] == 3 * UM
    assert crop["crop_noise"] == pytest.approx(10 * NT, rel=0.2)  # the high scan's floor
    assert dragonfly.scan_crop([low, high], [None, 2 * NT])["crop_noise"] == 2 * NT
    assert dragonfly.scan_crop([low, high], heights=[5 * UM, 9 * UM])["crop_height"] == 5 * UM
    flat = low.with_bz(np.full(low.bz.shape, 1e-6), name="model")  # a model's: no noise
    assert dragonfly.scan_crop([flat])["crop_noise"] == 0.0
    tiny = MapData(bz=np.zeros((2, 2)), x=x[:2], y=y[:2], height=100 * UM, name="t")
    assert dragonfly.scan_crop([tiny]) == {"crop": (0.0, 2 * UM, 0.0, 2 * UM),
                                           "crop_height": 100 * UM, "crop_noise": 0.0}
