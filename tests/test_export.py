"""Export of a map to CSV and to a PNG picture."""

from __future__ import annotations

import csv
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest

from smm_daq.analysis.export import _nice_length, write_csv, write_png
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData


def small_map():
    x = np.array([0.0, 10e-6, 20e-6])
    y = np.array([5e-6, 15e-6])
    bz = np.array([[1e-9, -2e-9, np.nan], [3.5e-9, 0.0, 4e-9]])
    return MapData(bz, x, y, name="scan_1", title="a scan")


def test_csv_has_one_row_per_pixel_with_units_in_the_header(tmp_path):
    path = write_csv(small_map(), tmp_path / "m.csv")
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["x_um", "y_um", "Bz_nT"]
    assert len(rows) == 1 + 6
    assert rows[1] == ["0", "5", "1"]
    assert rows[2] == ["10", "5", "-2"]
    assert rows[3] == ["20", "5", ""]  # NaN: not measured
    assert float(rows[4][2]) == pytest.approx(3.5)
    chi = np.full((2, 3), 0.25)
    rows = list(
        csv.reader(
            write_csv(
                small_map(), tmp_path / "c.csv", values=chi, column="chi_SI", factor=1.0
            ).open()
        )
    )
    assert rows[0][2] == "chi_SI" and float(rows[6][2]) == 0.25


def test_png_is_written_and_scale_bar_lengths_are_round(tmp_path):
    rng = np.random.default_rng(0)
    m = MapData(rng.normal(size=(30, 40)) * 1e-7, np.arange(40) * 5e-6, np.arange(30) * 5e-6)
    path = write_png(m, tmp_path / "m.png")
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert _nice_length(200.0) == 20.0
    assert _nice_length(1000.0) == 200.0
    assert _nice_length(26.0) == 5.0
    with pytest.raises(InputError, match="cannot write"):
        write_png(m, tmp_path / "missing-dir" / "m.png")
    with pytest.raises(InputError, match="shape"):
        write_csv(m, tmp_path / "x.csv", values=np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("nx", "ny", "sensor_size"),
    [(1, 21, None), (21, 1, None), (1, 1, (30e-6, 30e-6)), (1, 1, None)],
    ids=["one-column", "one-line", "one-point", "one-point-no-sensor"],
)
def test_png_of_a_scan_of_one_line_column_or_point(tmp_path, nx, ny, sensor_size):
    """A legal scan of one column, one line or one point exports as a picture (a single
    column crashed on a math domain error: its step is 0, so was the scale bar's span)."""
    m = MapData(np.linspace(-1e-7, 1e-7, nx * ny).reshape(ny, nx),
                12.5e-3 + np.arange(nx) * 20e-6, 12.5e-3 + np.arange(ny) * 20e-6,
                sensor_size=sensor_size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no singular (zero-width) axis limits either
        path = write_png(m, tmp_path / "m.png")
    assert mpimg.imread(path).ndim == 3


def test_png_of_a_scan_in_mm_draws_its_labels_inside_the_picture(tmp_path):
    """Five-digit µm ticks (a scan at 12.5 mm on the motor stage) pushed the y label off the
    picture's left edge: every edge of the picture is background, nothing cut there."""
    n = 11
    m = MapData(np.linspace(-1e-5, 1e-5, n * n).reshape(n, n),
                12.4e-3 + np.arange(n) * 20e-6, 12.4e-3 + np.arange(n) * 20e-6, name="s")
    image = mpimg.imread(write_png(m, tmp_path / "m.png"))[..., :3]
    for edge in (image[:, :2], image[:, -2:], image[:2], image[-2:]):
        assert (edge == 1.0).all()  # white


def test_png_draws_pixels_not_measured_grey_not_as_zero_field(tmp_path):
    """A scan cut off after its first lines exported with the lines not taken white, the
    colour of zero field: the picture read as a sample that was blank there."""
    n = 12
    bz = np.linspace(-1e-7, 1e-7, n * n).reshape(n, n)
    bz[n // 2:] = np.nan  # the top half not measured
    m = MapData(bz, np.arange(n) * 5e-6, np.arange(n) * 5e-6, name="cut", title="cut off")
    image = mpimg.imread(write_png(m, tmp_path / "m.png"))[..., :3]
    grey = np.all(np.abs(image - 0.6) < 0.01, axis=-1)
    white = np.all(image == 1.0, axis=-1)
    assert grey.sum() > 0.2 * white.sum()  # the top half of the plot, not a few text pixels
    full = MapData(np.nan_to_num(bz), m.x, m.y, name="full")
    image = mpimg.imread(write_png(full, tmp_path / "full.png"))[..., :3]
    assert np.all(np.abs(image - 0.6) < 0.01, axis=-1).sum() < 0.01 * grey.sum()


def test_png_wraps_a_long_title_inside_the_picture(tmp_path):
    """An entry's name before its title ("induced_y: in_field_y − remanent (registered: no
    shift applied)") ran over the colour bar and out of the picture's right edge."""
    n = 11
    m = MapData(np.linspace(-1e-7, 1e-7, n * n).reshape(n, n), np.arange(n) * 20e-6,
                np.arange(n) * 20e-6, name="s")
    title = "induced_y_again: in_field_y_again − remanent_again (registered: no shift applied)"
    image = mpimg.imread(write_png(m, tmp_path / "m.png", title=title))[..., :3]
    for edge in (image[:, :2], image[:, -2:], image[:2], image[-2:]):
        assert (edge == 1.0).all()  # white: nothing cut there
