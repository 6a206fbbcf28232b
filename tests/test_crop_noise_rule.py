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


def _sensor_reading(pos: np.ndarray, vol: float, centre: tuple[float, float, float],
                    size: tuple[float, float, float]) -> float:
    """The largest Bz over moment directions that a sensor of full size (w, l, thickness)
    centred at `centre` reads, averaged over its area (and thickness) by Gauss-Legendre
    quadrature of choclo's dipole, the grain magnetized to saturation."""
    nodes, weights = np.polynomial.legendre.leggauss(8)
    axes = [list(zip(nodes * s / 2, weights / 2, strict=True)) if s > 0 else [(0.0, 1.0)]
            for s in size]
    g = np.zeros(3)
    for ax, a in axes[0]:
        for by, b in axes[1]:
            for cz, c in axes[2]:
                point = (centre[0] + ax, centre[1] + by, centre[2] + cz)
                g += a * b * c * np.array([choclo.dipole.magnetic_u(*point, *pos, *unit)
                                           for unit in np.eye(3)])
    return float(np.linalg.norm(g) * dragonfly.CROP_MAGNETIZATION * vol)


@pytest.mark.parametrize(("height_um", "size_um", "pos_um"), [
    (10.0, (30.0, 30.0, 0.0), (119.0, 20.0, -2.0)),  # a 30 µm area, 79 µm beyond the edge
    (6.0, (1.0, 1.0, 4.0), (20.0, 20.0, -2.0)),      # a 4 µm thick sensor, over the grain
])
def test_a_grain_the_sensor_reads_above_the_threshold_is_kept(
        tmp_path: Path, height_um: float, size_um: tuple[float, float, float],
        pos_um: tuple[float, float, float]) -> None:
    """A sensor reads Bz averaged over its area, or volume, and beyond a grain's peak the
    field is convex: the average exceeds the field at the sensor's centre. The noise is set
    so that the edge sensor's reading is 2 % above a tenth of it while the field at every
    sensor centre stays below: the grain matters to that pixel, and is kept."""
    size = tuple(s * UM for s in size_um)
    x = np.arange(21) * 2 * UM
    m = MapData(bz=np.zeros((21, 21)), x=x, y=x, height=height_um * UM, sensor_size=size[:2],
                name="scan")
    pos, vol = np.array(pos_um) * UM, 1 * UM**3
    nearest = (min(max(pos[0], 0.0), x[-1]), min(max(pos[1], 0.0), x[-1]), height_um * UM)
    reading = _sensor_reading(pos, vol, nearest, size)  # type: ignore[arg-type]
    sigma = reading / (1.02 * dragonfly.CROP_FRACTION)
    centres = dragonfly.largest_field(pos[None], np.array([vol]), dragonfly.scan_window([m]),
                                      height_um * UM)[0]
    assert centres < dragonfly.CROP_FRACTION * sigma  # the sensor centres alone: dropped
    crop = dragonfly.scan_crop([m], [sigma], sizes=[size])
    bound = dragonfly.largest_field(pos[None], np.array([vol]), crop["crop"],  # type: ignore
                                    crop["crop_height"])[0]  # type: ignore[arg-type]
    assert bound >= reading  # a bound of what the sensor reads
    path = tmp_path / "cc.csv"
    _components(path, [(1, 30, 30, 145, 1000.0),  # under the scan, 5 µm deep, large
                       (2, pos_um[0], pos_um[1], 150 + pos_um[2], 1.0)])
    options = dragonfly.DragonflyOptions(z_top_mm=0.15, **crop)  # type: ignore[arg-type]
    assert dragonfly.read_dragonfly(path, options).labels.tolist() == [1, 2]


def test_the_crop_spans_the_sensors_whole_at_their_lowest_face() -> None:
    x = np.arange(10) * 2 * UM
    rng = np.random.default_rng(4)
    area = MapData(bz=20 * NT * rng.standard_normal((10, 10)), x=x, y=x, height=10 * UM,
                   sensor_size=(30 * UM, 20 * UM), name="area")
    crop = dragonfly.scan_crop([area])  # the map's own sensor
    assert crop["crop"] == pytest.approx((-15 * UM, 33 * UM, -10 * UM, 28 * UM))
    assert crop["crop_height"] == 10 * UM
    volume = area.with_bz(area.bz, height=6 * UM, name="volume")
    crop = dragonfly.scan_crop([area, volume], sizes=[(30 * UM, 20 * UM), (4 * UM, 4 * UM,
                                                                           3 * UM)])
    assert crop["crop"] == pytest.approx((-15 * UM, 33 * UM, -10 * UM, 28 * UM))
    assert crop["crop_height"] == pytest.approx(4.5 * UM)  # the volume sensor's lowest face


IRON = 1710e3  # A/m: iron's saturation magnetization


def test_a_grain_of_iron_is_kept_at_irons_saturation_and_dropped_at_magnetites(
        tmp_path: Path) -> None:
    """At 100 µm above the top with σ 250 nT, a 10 µm³ grain 10 µm deep and 300 µm beyond the
    edge could put 17 nT on it magnetized as magnetite, under a tenth of σ, but 61 nT as
    iron: kept where the crop is told the grains are iron."""
    path = tmp_path / "cc.csv"
    _components(path, [(1, 20, 20, 140, 1.0),       # under the scan
                       (2, 350, 20, 140, 10.0)])    # 300 µm beyond x1
    magnetite = dragonfly.DragonflyOptions(z_top_mm=0.15, crop=WINDOW, crop_height=100 * UM,
                                           crop_noise=250 * NT)
    assert magnetite.crop_magnetization == dragonfly.CROP_MAGNETIZATION == 480e3
    assert dragonfly.read_dragonfly(path, magnetite).labels.tolist() == [1]
    iron = dragonfly.DragonflyOptions(z_top_mm=0.15, crop=WINDOW, crop_height=100 * UM,
                                      crop_noise=250 * NT, crop_magnetization=IRON)
    assert dragonfly.read_dragonfly(path, iron).labels.tolist() == [1, 2]


def _session(tmp_path: Path) -> tuple[Path, Path]:
    """A scan 50 × 40 µm at 100 µm, 250 nT of noise (entry 'scan' of s.h5), and the export
    of the grains of the test above (cc.csv)."""
    from smm_daq.storage.nexus import write_map_entry

    x, y = np.arange(0, 50.1, 5) * UM, np.arange(0, 40.1, 5) * UM
    bz = 250 * NT * np.random.default_rng(7).standard_normal((y.size, x.size))
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=bz, x=x, y=y, height=100 * UM, name="scan"), kind="scan")
    grains = tmp_path / "cc.csv"
    _components(grains, [(1, 20, 20, 140, 1.0), (2, 350, 20, 140, 10.0)])
    return path, grains


def test_the_command_line_takes_and_records_the_saturation_magnetization(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import h5py

    from smm_daq.analysis.mmt.result_read import read_result_entry
    from smm_daq.cli.main import main

    path, grains = _session(tmp_path)
    common = ["mmt", "invert", str(path), "--entry", "scan", "--grains", str(grains),
              "--grain-format", "dragonfly", "--z-top-um", "150", "--crop-to-scan",
              "--sigma-nT", "250"]
    for name, extra, kept in (("iron", ["--crop-magnetization-kA-per-m", "1710"], [1, 2]),
                              ("magnetite", [], [1])):
        assert main([*common, *extra, "--out", str(tmp_path / f"{name}.csv"),
                     "--result-entry", name]) == 0, capsys.readouterr().err
        result = read_result_entry(path, name)
        assert result.grains.labels.tolist() == kept  # type: ignore[attr-defined]
        options = result.options.dragonfly
        assert options is not None
        assert options.crop_magnetization == (IRON if extra else 480e3)
        with h5py.File(path, "r") as f:
            recorded = f[f"{name}/process/parameters/crop_magnetization"]
            assert recorded[()] == options.crop_magnetization
            assert recorded.attrs["units"] == "A/m"
        rows = (tmp_path / f"{name}.csv").read_text(encoding="utf-8").splitlines()
        assert len(rows) - 1 == len(kept)
    capsys.readouterr()
    for value, words in (("0", "above 0 and at most 2500 kA/m"),
                         ("1.71e6", "1.71e+06 kA/m; expected the most a grain could be")):
        assert main([*common, "--crop-magnetization-kA-per-m", value, "--out",
                     str(tmp_path / "bad.csv")]) == 2
        err = capsys.readouterr().err
        assert "--crop-magnetization-kA-per-m" in err and words in err, err
    without = [a for a in common if a != "--crop-to-scan"]
    assert main([*without, "--crop-magnetization-kA-per-m", "1710", "--out",
                 str(tmp_path / "bad.csv")]) == 2
    assert "given without --crop-to-scan" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()
