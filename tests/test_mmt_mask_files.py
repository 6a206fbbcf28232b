"""Mask files as the tools that write them write them: images saved by Pillow in every mode a
drawing tool or Fiji saves (1, L, LA, P, RGB, RGBA, 16-bit and float grey, JPEG, TIFF stacks,
a camera's orientation tag) and .npy arrays saved by numpy, each read as the mask drawn or
refused by name, on the command line too."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from smm_daq.analysis.mmt.masks import MaskWarning, read_mask
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
DATA = Path(__file__).parent / "data"
NY, NX = 8, 10
# as drawn: black (bad) in the image's top-left corner and one pixel near its bottom right
DRAWN = np.zeros((NY, NX), bool)
DRAWN[0:2, 0:3] = True
DRAWN[6, 8] = True
WANT = DRAWN[::-1]  # the image's top row is the map's highest y
WHITE = (~DRAWN).astype(np.uint8) * 255


def scan() -> MapData:
    x = np.arange(NX) * UM
    return MapData(bz=np.zeros((NY, NX)), x=x, y=x[:NY], name="scan")


def grey_levels(black: float, white: float, dtype: type) -> np.ndarray:
    return np.where(DRAWN, black, white).astype(dtype)


def _rgba_layer() -> Image.Image:
    """Black strokes on a transparent layer (colour black where transparent, as most editors
    store it)."""
    rgba = np.zeros((NY, NX, 4), np.uint8)
    rgba[..., 3] = np.where(DRAWN, 255, 0)
    return Image.fromarray(rgba, "RGBA")


SAVED = {
    "1": lambda p: Image.fromarray(~DRAWN).save(p / "m.png"),
    "L": lambda p: Image.fromarray(WHITE).save(p / "m.png"),
    "LA opaque": lambda p: Image.fromarray(WHITE).convert("LA").save(p / "m.png"),
    "P": lambda p: Image.fromarray(WHITE).convert("RGB").convert("P").save(p / "m.png"),
    "RGB": lambda p: Image.fromarray(WHITE).convert("RGB").save(p / "m.png"),
    "RGBA opaque": lambda p: Image.fromarray(WHITE).convert("RGBA").save(p / "m.png"),
    "BMP": lambda p: Image.fromarray(WHITE).convert("RGB").save(p / "m.bmp"),
    "CMYK TIFF": lambda p: Image.fromarray(WHITE).convert("CMYK").save(p / "m.tif"),
    # 8-pixel JPEG blocks straddle the strokes: the compression's grey noise stays far from half
    "JPEG grey": lambda p: Image.fromarray(np.kron(WHITE, np.ones((5, 5), np.uint8))).save(
        p / "m.jpg", quality=30),
    "JPEG colour": lambda p: Image.fromarray(np.kron(WHITE, np.ones((5, 5), np.uint8))).convert(
        "RGB").save(p / "m.jpeg", quality=30),
    # as web drawing tools and browsers save them
    "GIF": lambda p: Image.fromarray(WHITE).convert("P").save(p / "m.gif"),
    "WebP lossless": lambda p: Image.fromarray(WHITE).convert("RGB").save(
        p / "m.webp", lossless=True),
    # a phone's JPEG (MPO) carries a preview after the photo
    "MPO": lambda p: Image.fromarray(WHITE).convert("RGB").save(
        p / "m.jpg", format="MPO", save_all=True,
        append_images=[Image.new("RGB", (5, 4), "white")]),
}


@pytest.mark.parametrize("kind", list(SAVED))
def test_mask_images_as_drawing_tools_save_them(tmp_path, kind):
    SAVED[kind](tmp_path)
    (path,) = tmp_path.iterdir()
    assert np.array_equal(read_mask(path, scan()), WANT)


@pytest.mark.parametrize(("black", "white"), [(0, 65535), (20000, 40000), (32767, 32768)])
@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_a_16_bit_mask_is_split_at_half_of_65535(tmp_path, black, white, suffix):
    """Fiji and ImageJ save 16-bit grey; 8-bit conversion would clip every level above 255 to
    white instead of scaling it."""
    path = tmp_path / f"m.{suffix}"
    Image.fromarray(grey_levels(black, white, np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert np.array_equal(read_mask(path, scan()), WANT)


@pytest.mark.parametrize(("black", "white"), [(0.0, 1.0), (0.2, 0.8), (0.0, 255.0),
                                              (1000.0, 60000.0), (np.nan, 1.0)])
def test_a_float_mask_from_fiji_is_white_at_1_255_or_65535(tmp_path, black, white):
    path = tmp_path / "m.tif"
    Image.fromarray(grey_levels(black, white, np.float32)).save(path)
    assert Image.open(path).mode == "F"
    assert np.array_equal(read_mask(path, scan()), WANT)


@pytest.mark.parametrize("low", [-1.0, np.inf])
def test_a_float_image_that_is_no_mask_is_refused_with_its_range(tmp_path, low):
    """A float image of the map itself (negative fields) has no white to split at half of."""
    path = tmp_path / "m.tif"
    Image.fromarray(grey_levels(low, 1.0, np.float32)).save(path)
    with pytest.raises(InputError, match=r"m\.tif: is a 32-bit float image with values "
                       r"(-1|1) \.\. (1|inf); expected a mask's grey levels from 0 \(black\) to "
                       r"white at 1 or 255 or 65535"):
        read_mask(path, scan())


def _layer_la(path: Path) -> None:
    la = np.zeros((NY, NX, 2), np.uint8)
    la[..., 1] = np.where(DRAWN, 255, 0)
    Image.fromarray(la, "LA").save(path)


def _palette_with_transparent_paper(path: Path) -> None:
    """A palette image whose index 0 (black in its palette) is transparent paper and index 1
    black paint, as GIF-minded editors save a layer."""
    im = Image.fromarray(DRAWN.astype(np.uint8), "P")
    im.putpalette([0, 0, 0, 0, 0, 0] + [255] * 762)
    im.save(path, transparency=0)


@pytest.mark.parametrize("save", [lambda p: _rgba_layer().save(p), _layer_la,
                                  _palette_with_transparent_paper],
                         ids=["RGBA layer", "LA layer", "P with transparency"])
def test_black_strokes_on_a_transparent_layer_are_the_mask(tmp_path, save):
    """Transparent pixels are unpainted paper (kept), whatever colour the file stores under
    them: read as black they excluded the whole map."""
    path = tmp_path / "m.png"
    save(path)
    assert np.array_equal(read_mask(path, scan()), WANT)


def test_half_transparent_black_is_half_grey(tmp_path):
    rgba = np.zeros((NY, NX, 4), np.uint8)
    rgba[..., 3] = np.where(DRAWN, 200, 100)  # black at 78 % over white: bad; at 39 %: kept
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png", scan()), WANT)


@pytest.mark.parametrize("suffix", ["tif", "gif"])
def test_a_stack_of_pages_is_refused(tmp_path, suffix):
    """Which page of a stack (or frame of an animated GIF) is the mask is not known: the first
    would be taken silently."""
    path = tmp_path / f"stack.{suffix}"
    Image.fromarray(WHITE).save(path, save_all=True, append_images=[Image.fromarray(~WHITE)])
    with pytest.raises(InputError, match=rf"stack\.{suffix}: holds 2 pages \(an image stack\); "
                       r"expected one image, the mask: save its page alone"):
        read_mask(path, scan())


@pytest.mark.parametrize(("orientation", "stored"), [(3, np.rot90(WHITE, 2)),
                                                     (6, np.rot90(WHITE, 1)),
                                                     (8, np.rot90(WHITE, -1))])
def test_a_cameras_orientation_tag_is_honoured(tmp_path, orientation, stored):
    """A photo of a printed mask is stored as the sensor saw it and shown turned by its tag:
    the mask is the image as it is shown."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.kron(stored, np.ones((4, 4), np.uint8))).save(path, exif=exif,
                                                                     quality=95)
    assert np.array_equal(read_mask(path, scan()), WANT)


@pytest.mark.parametrize("saved", [WANT.astype(float), WANT.astype(np.float32),
                                   WANT.astype(np.uint8), np.asfortranarray(WANT),
                                   np.asfortranarray(WANT.astype(float))],
                         ids=["float 0/1", "float32 0/1", "uint8 0/1", "Fortran bool",
                              "Fortran float"])
def test_npy_masks_of_zeros_and_ones_in_any_type_and_order(tmp_path, saved):
    np.save(tmp_path / "m.npy", saved)
    assert np.array_equal(read_mask(tmp_path / "m.npy", scan()), WANT)


@pytest.mark.parametrize(("saved", "value"), [(WANT.astype(np.uint8) * 255, "255"),
                                              (np.where(WANT, np.nan, 0.0), "nan"),
                                              (WANT * 0.5, "0.5")])
def test_npy_mask_of_other_values_refused_at_the_first(tmp_path, saved, value):
    """0/255 may be an image's (255 white: good) or a mask × 255 (255 bad): refused, not
    guessed."""
    np.save(tmp_path / "m.npy", saved)
    with pytest.raises(InputError, match=rf"m\.npy: holds {value} at row 1, column 8 "
                       r"\((uint8|float64)\); expected only 0 and 1 \(or booleans\), 1 on the "
                       "bad pixels"):
        read_mask(tmp_path / "m.npy", scan())


def test_a_transposed_npy_mask_is_refused_with_the_shape_expected(tmp_path):
    np.save(tmp_path / "m.npy", WANT.T)
    with pytest.raises(InputError, match=r"m\.npy: holds an array of shape \(10, 8\), the map's "
                       r"transposed \(nx, ny\); expected the map's \(8, 10\) \(ny, nx\)"):
        read_mask(tmp_path / "m.npy", scan())


def test_bad_mask_files_are_refused_by_the_command_line_which_writes_nothing(tmp_path, capsys,
                                                                           demo_session):
    h5 = demo_session
    ny, nx = 16, 20  # the demo scan's grid
    with h5py.File(h5) as f:
        entries = sorted(f)
    stack, wrong, transposed = tmp_path / "stack.tif", tmp_path / "x255.npy", tmp_path / "t.npy"
    page = Image.new("L", (nx, ny), 255)
    page.save(stack, save_all=True, append_images=[page])
    np.save(wrong, np.full((ny, nx), 255, np.uint8))
    np.save(transposed, np.zeros((nx, ny), bool))
    out = tmp_path / "r.csv"
    for mask, said in ((stack, "holds 2 pages (an image stack)"),
                       (wrong, "holds 255 at row 0, column 0 (uint8); expected only 0 and 1"),
                       (transposed, f"holds an array of shape ({nx}, {ny}), the map's "
                                    f"transposed (nx, ny); expected the map's ({ny}, {nx})")):
        assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                     "--grains", str(DATA / "grains_points.txt"), "--mask", str(mask),
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{mask}: {said}" in err and "Traceback" not in err
        assert not out.exists()
        with h5py.File(h5) as f:
            assert sorted(f) == entries


def test_an_image_of_the_maps_shape_at_another_size_is_resampled(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(WHITE).resize((25, 20), Image.Resampling.NEAREST).save(path)
    assert np.array_equal(read_mask(path, scan()), WANT)


def test_a_picture_of_the_map_with_axes_around_it_is_refused(tmp_path):
    """Black paint on smm-daq's own picture of the map (`export --png`: axes, title, colour
    bar) would be stretched over the scan, its black labels masking pixels too."""
    from smm_daq.analysis.export import write_png

    path = write_png(scan(), tmp_path / "map.png")
    picture = np.array(Image.open(path).convert("RGB"))
    picture[100:140, 150:200] = 0  # the user's black paint
    Image.fromarray(picture).save(path)
    h, w = picture.shape[:2]
    with pytest.raises(InputError, match=rf"map\.png: is {w} × {h} pixels \(width/height "
                       rf"{w / h:.4g}\); expected the scan's area alone, its 10 × 8 sensors "
                       r"\(width/height 1\.25\) or that shape scaled: crop a picture to the map"):
        read_mask(path, scan())


# the stored levels: Pillow stores 8-bit grey inverted itself (given as shown), wider as given
@pytest.mark.parametrize(("black", "white", "dtype"), [(0, 255, np.uint8), (65535, 0, np.uint16),
                                                       (1.0, 0.0, np.float32)])
def test_a_tiff_that_is_white_at_zero_reads_as_it_is_shown(tmp_path, black, white, dtype):
    """ImageJ saves an image shown with an inverting LUT as PhotometricInterpretation 0
    (WhiteIsZero): PIL turns 8-bit grey right side up itself, 16-bit and float grey not."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[262] = 0
    path = tmp_path / "m.tif"
    Image.fromarray(grey_levels(black, white, dtype)).save(path, tiffinfo=tags)
    assert Image.open(path).tag_v2[262] == 0
    assert np.array_equal(read_mask(path, scan()), WANT)


def test_a_json_mask_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad's UTF-8 starts with a byte-order mark, which json.loads refuses."""
    path = tmp_path / "m.json"
    path.write_text('{"rectangles_um": [[0, 2, 6, 7]]}', encoding="utf-8-sig")
    mask = read_mask(path, scan())
    assert mask[6:8, 0:3].all() and mask.sum() == 6


def test_a_damaged_tiff_is_refused_as_unreadable_wherever_it_is_cut(tmp_path):
    """Counting a TIFF's pages parses each page's directory: cut short, PIL fails there with
    TypeError or KeyError rather than its decoders' errors. The refusal is the one message:
    Pillow's own warnings ("Corrupt EXIF data") reached stderr beside it."""
    buf = io.BytesIO()
    Image.fromarray(WHITE).save(buf, format="TIFF", save_all=True,
                                append_images=[Image.fromarray(WHITE)])
    data = buf.getvalue()
    path = tmp_path / "cut.tif"
    for end in range(1, len(data)):
        path.write_bytes(data[:end])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(InputError, match=r"cut\.tif: (is not a readable image|holds 2 "
                               "pages)"):
                read_mask(path, scan())
        assert [str(w.message) for w in caught] == [], end


def test_pillows_warning_on_an_image_it_reads_is_one_mask_warning_naming_it(tmp_path,
                                                                            monkeypatch):
    """Played by Pillow's decompression-bomb warning (an image above its pixel limit, below
    twice it), which reached the user as Pillow's own, naming no file."""
    path = tmp_path / "m.png"
    Image.fromarray(WHITE).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", NX * NY - 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(read_mask(path, scan()), WANT)
    assert [w.category for w in caught] == [MaskWarning]
    assert str(caught[0].message).startswith(f"{path}: read, but Pillow warned: Image size "
                                             "(80 pixels) exceeds limit")


def test_an_integer_image_beyond_16_bits_is_refused_with_its_range(tmp_path):
    """A 32-bit integer TIFF (a label or height image, not a mask) has no white at 65535:
    8-bit conversion clipped it to a mask of almost every pixel."""
    path = tmp_path / "m.tif"
    Image.fromarray(grey_levels(-5, 70000, np.int32)).save(path)
    assert Image.open(path).mode == "I"
    with pytest.raises(InputError, match=r"m\.tif: is a 16- or 32-bit integer image with values "
                       r"-5 \.\. 70000; expected a mask's grey levels from 0 \(black\) to white "
                       "at 65535"):
        read_mask(path, scan())


def test_the_coloured_map_given_as_a_mask_is_warned_of(tmp_path):
    """matplotlib's imsave of the map in a colour map, pixel for pixel (as a user might paint
    on it, then give the wrong file): its darker half would be excluded without a word."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    ny, nx = 40, 50
    x = np.arange(nx) * UM
    data = MapData(bz=np.zeros((ny, nx)), x=x, y=x[:ny], name="scan")
    field = np.cumsum(rng.standard_normal((ny, nx)), axis=1)
    path = tmp_path / "map.png"
    plt.imsave(path, field, cmap="viridis")
    with pytest.warns(MaskWarning, match=r"map\.png: \d+ % of its pixels are grey, neither near "
                                         r"black nor near white: it looks like a picture"):
        mask = read_mask(path, data)
    assert 0 < mask.mean() < 1


@pytest.mark.parametrize("kind", list(SAVED))
def test_masks_drawn_in_black_and_white_are_not_warned_of(tmp_path, kind):
    SAVED[kind](tmp_path)
    (path,) = tmp_path.iterdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        read_mask(path, scan())


def test_an_npy_mask_excluding_most_pixels_is_warned_of_as_a_mask_of_kept_pixels(tmp_path):
    """The multipole library's fieldMask is True on the pixels it keeps, ours on the bad
    ones: saved as is and given to --mask it excludes the good pixels and fits the bad. Read
    as it says (a mask may mean it), and warned of, naming the counts and the inversion."""
    np.save(tmp_path / "keep.npy", ~WANT)  # the library's fieldMask of the same bad pixels
    with pytest.warns(MaskWarning, match=r"keep\.npy: excludes 73 of the 80 measured pixels "
                      r"of scan 'scan'; expected True \(or 1\) on the bad pixels only\. The "
                      r"multipole library's fieldMask is True on the pixels it keeps"):
        assert np.array_equal(read_mask(tmp_path / "keep.npy", scan()), ~WANT)
    np.save(tmp_path / "bad.npy", WANT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(read_mask(tmp_path / "bad.npy", scan()), WANT)


def test_pixels_not_measured_do_not_count_towards_most_of_the_scan(tmp_path):
    """Half the map unmeasured (NaN) and masked too: of the measured pixels the mask
    excludes 6, not most."""
    data = scan()
    bz = data.bz.copy()
    bz[:, NX // 2:] = np.nan
    data = data.with_bz(bz)
    saved = WANT.copy()
    saved[:, NX // 2:] = True
    np.save(tmp_path / "m.npy", saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mask(tmp_path / "m.npy", data)
