"""Control-point registration of an image of the sample, and its entry in session files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from smm_daq.analysis.optical import fit_affine, load_image
from smm_daq.errors import InputError
from smm_daq.storage.h5file import marked_open
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry
from smm_daq.storage.optical_entry import read_optical_entry, write_optical_entry

UM = 1e-6


def known_transform() -> np.ndarray:
    """Rotation by 30°, 2.5 µm per pixel, a slight shear, shifted: written out by hand."""
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    linear = 2.5 * UM * np.array([[c, -s], [s, c]]) @ np.array([[1.0, 0.05], [0.0, 1.0]])
    return np.column_stack([linear, [120 * UM, -40 * UM]])


def test_three_points_give_the_transform_they_were_made_with() -> None:
    matrix = known_transform()
    pixels = np.array([[10.0, 20.0], [300.0, 40.0], [150.0, 250.0]])
    points = pixels @ matrix[:, :2].T + matrix[:, 2]
    reg = fit_affine(pixels, points)
    np.testing.assert_allclose(reg.matrix, matrix, rtol=1e-9, atol=1e-15)
    assert reg.rms < 1e-15
    # A pixel that was not a control point lands where the transform says.
    np.testing.assert_allclose(reg.to_sample([[0.0, 0.0]]), [matrix[:, 2]], atol=1e-15)
    assert reg.pixel_size == pytest.approx(2.5 * UM, rel=1e-9)


def test_noisy_points_give_a_least_squares_fit_and_their_misfit() -> None:
    rng = np.random.default_rng(3)
    matrix = known_transform()
    pixels = rng.uniform(0, 500, (40, 2))
    noise = 1.0 * UM
    points = pixels @ matrix[:, :2].T + matrix[:, 2] + rng.normal(0, noise, (40, 2))
    reg = fit_affine(pixels, points)
    # Two coordinates each of SD 1 µm; 6 parameters fitted from 80 numbers.
    assert reg.rms == pytest.approx(noise * np.sqrt(2 * (80 - 6) / 80), rel=0.25)
    np.testing.assert_allclose(reg.to_sample(pixels), pixels @ matrix[:, :2].T + matrix[:, 2],
                               atol=1.5 * noise)


@pytest.mark.parametrize(
    ("pixels", "points", "words"),
    [
        ([[0, 0], [1, 1]], [[0, 0], [1, 1]], "at least 3"),
        ([[0, 0], [1, 1], [2, 2]], [[0, 0], [1, 0], [0, 1]], "one line"),
        ([[0, 0], [10, 0], [0, 10]], [[0, 0], [1, 1], [2, 2]], "one line"),
        ([[0, 0], [10, 0], [0, 10]], [[0, 0], [1, 0]], "pairs"),
        ([[0, 0], [10, 0], [0, np.nan]], [[0, 0], [1, 0], [0, 1]], "finite"),
    ],
)
def test_undetermined_or_bad_control_points_are_refused(pixels, points, words) -> None:
    with pytest.raises(InputError, match=words):
        fit_affine(pixels, points)


def test_images_are_read_as_rgb_and_non_images_refused(tmp_path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgb = load_image(tmp_path / "grey.png")
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 1], grey)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(InputError, match=r"notes\.png.*cannot be read as an image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_entry_round_trip_and_viewer_layout(tmp_path) -> None:
    path = tmp_path / "s.h5"
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    pixels = np.array([[0.0, 0.0], [39.0, 0.0], [0.0, 29.0]])
    points = pixels * 2 * UM
    reg = fit_affine(pixels, points)
    write_optical_entry(path, "thin_section", image, reg, image_file="ts.png")
    assert [e.name for e in list_entries(path) if e.kind == "optical"] == ["thin_section"]
    back, reg_back = read_optical_entry(path, "thin_section")
    np.testing.assert_array_equal(back, image)
    np.testing.assert_allclose(reg_back.matrix, reg.matrix)
    with h5py.File(path, "r") as f:
        entry = f["thin_section"]
        assert entry.attrs["NX_class"] == "NXentry"
        data = entry[entry.attrs["default"]]
        assert data.attrs["NX_class"] == "NXdata"
        signal = data[data.attrs["signal"]]
        assert signal.shape == (30, 40, 3)
        assert signal.attrs["interpretation"] == "rgb-image"
        assert entry["registration"].attrs["NX_class"] == "NXprocess"
        assert entry["registration/matrix"].attrs["units"] == "m"
    with pytest.raises(InputError, match="already exists"):
        write_optical_entry(path, "thin_section", image, reg)
    with pytest.raises(InputError, match="uint8"):
        write_optical_entry(path, "other", image.astype(float), reg)
    assert [e.name for e in list_entries(path) if e.kind == "optical"] == ["thin_section"]


def test_the_file_still_opens_on_the_map_made_last_after_an_image(tmp_path) -> None:
    """The root `default` (what silx and NeXpy open) names the entry made last, but not an
    optical image: a picture of the sample to place the maps on, not a result."""
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(np.zeros((2, 3)), np.arange(3) * UM, np.arange(2) * UM,
                                  name="scan"), kind="scan")
    pixels = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    write_optical_entry(path, "thin_section", np.zeros((3, 4, 3), dtype=np.uint8),
                        fit_affine(pixels, pixels * UM))
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] == "scan"


# Run as `python -c KILLED_STORING_AN_IMAGE FILE`: stores an image and is killed (-9) as the
# registration's matrix is written, the image already flushed to the file.
KILLED_STORING_AN_IMAGE = textwrap.dedent(
    """
    import os, sys
    import h5py, numpy as np
    from smm_daq.analysis.optical import fit_affine
    from smm_daq.storage.optical_entry import write_optical_entry

    real = h5py.Group.create_dataset

    def dying(group, name, *args, **kw):
        if name == "matrix":
            group.file.flush()
            os.kill(os.getpid(), 9)
        return real(group, name, *args, **kw)

    h5py.Group.create_dataset = dying
    pixels = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    write_optical_entry(sys.argv[1], "thin_section", np.zeros((3, 4, 3), dtype=np.uint8),
                        fit_affine(pixels, pixels * 1e-6))
    """
)


def test_an_image_whose_writer_was_killed_is_never_part_of_the_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Laid out under a temporary name and moved in whole, as every entry: the half-written
    image is left out by the reader that repairs the file (it was listed as an entry)."""
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(np.ones((2, 3)) * 1e-7, np.arange(3.0), np.arange(2.0),
                                  name="earlier"), kind="induced")
    proc = subprocess.run([sys.executable, "-c", KILLED_STORING_AN_IMAGE, str(path)],
                          check=False)
    assert proc.returncode == -9 and marked_open(path)
    with caplog.at_level("WARNING", logger="smm_daq.storage.h5file"):
        assert [e.name for e in list_entries(path)] == ["earlier"]
    assert "left out entry 'thin_section', cut off while written" in caplog.text
    with h5py.File(path, "r") as f:
        assert list(f) == ["earlier"]
