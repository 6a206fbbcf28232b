"""`smm-daq export --mask-template`: the map as an image to paint bad pixels on, read back by
the MMT mask reader as the paint alone, as a user's image editor would leave it (anti-aliased
strokes, hard rectangles, JPEG), oriented as the map's x and y; and its refusals."""

from __future__ import annotations

import errno
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image, ImageDraw

from smm_daq.analysis.mask_template import MIN_LUMA, NOT_MEASURED
from smm_daq.analysis.mmt.masks import MaskWarning, NothingMasked, read_mask
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6
DATA = Path(__file__).parent / "data"
UP = 4  # strokes drawn at 4× and averaged down: an anti-aliased brush


def dipole_map() -> MapData:
    """48 × 36 sensors: a few dipoles' Bz over a rock's field (a smooth random one, as many
    small grains make it), a saturated spot, a corner not measured."""
    x = 100 * UM + np.arange(48) * 2 * UM
    y = -50 * UM + np.arange(36) * 2 * UM
    X, Y = np.meshgrid(x, y)
    rng = np.random.default_rng(7)
    bz = 1e-7 * (np.cumsum(rng.standard_normal(X.shape), 0)
                 + np.cumsum(rng.standard_normal(X.shape), 1))
    for cx, cy, s in ((0.3, 0.4, 1), (0.7, 0.6, -1), (0.5, 0.2, 0.5)):
        dx, dy = X - (x[0] + cx * np.ptp(x)), Y - (y[0] + cy * np.ptp(y))
        r2 = dx ** 2 + dy ** 2 + (10 * UM) ** 2
        bz += s * 1e-6 * (2 * (10 * UM) ** 2 - dx ** 2 - dy ** 2) / r2 ** 2.5 * (10 * UM) ** 3
    bz[20, 30] = 1e-3  # a saturated spot, 1000 × the map
    bz[-3:, :4] = np.nan
    return MapData(bz=bz, x=x, y=y, height=10 * UM, sensor_size=(0.0, 0.0), name="scan")


@pytest.fixture
def exported(tmp_path) -> tuple[Path, Path, MapData]:
    h5 = tmp_path / "s.h5"
    m = dipole_map()
    write_map_entry(h5, m, kind="scan")
    out = tmp_path / "scan_mask.png"
    assert main(["export", str(h5), "--entry", "scan", "--mask-template", str(out)]) == 0
    return h5, out, read_map(h5, "scan")


def paint(template: Path, out: Path, **save: object) -> np.ndarray:
    """Paint on the template as an image editor does: anti-aliased black strokes 1.5 pixels
    wide (drawn at 4× and averaged down) and two hard black rectangles; save as `out`.
    Returns each image pixel's paint coverage, 0 (untouched) to 1 (covered whole)."""
    im = Image.open(template).convert("RGB")
    w, h = im.size
    big = im.resize((w * UP, h * UP), Image.Resampling.NEAREST)
    cover = Image.new("L", big.size, 0)
    for canvas, ink in ((ImageDraw.Draw(big), (0, 0, 0)), (ImageDraw.Draw(cover), 255)):
        canvas.line([(5, 7), (w * UP - 9, h * UP // 2 + 3)], fill=ink, width=6)  # a scratch
        canvas.line([(w * UP // 3, h * UP - 2), (w * UP // 2 + 5, 3)], fill=ink, width=6)
        canvas.ellipse((130, 40, 150, 58), fill=ink)  # dust
    small = big.resize((w, h), Image.Resampling.BOX)
    coverage = np.asarray(cover.resize((w, h), Image.Resampling.BOX), float) / 255
    hard = ImageDraw.Draw(small)
    for box in ((2, 2, 6, 4), (40, 30, 47, 35)):  # inclusive, image pixels
        hard.rectangle(box, fill=(0, 0, 0))
        coverage[box[1]:box[3] + 1, box[0]:box[2] + 1] = 1.0
    small.save(out, **save)
    return coverage


@pytest.mark.parametrize("save", [{}, {"quality": 90}], ids=["PNG", "JPEG 90"])
def test_paint_on_the_template_reads_back_as_the_paint_alone(exported, tmp_path, save):
    _, template, m = exported
    out = tmp_path / ("painted.jpg" if save else "painted.png")
    coverage = paint(template, out, **save)[::-1]  # as the map's rows: row 0 the lowest y
    assert np.mean((coverage > 0) & (coverage < 1)) > 0  # there are anti-aliased edges
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        warnings.simplefilter("error", NothingMasked)
        mask = read_mask(out, m)
    assert mask[coverage == 1].all()  # under the paint: excluded
    assert not mask[coverage == 0].any()  # nothing of the map itself, NaN corner included
    if not save:  # lossless: an edge pixel is excluded when mostly paint
        edge = (coverage > 0) & (coverage < 1)
        assert mask[edge & (coverage > 0.5)].all() and not mask[edge & (coverage < 0.2)].any()


def test_the_unpainted_template_excludes_nothing_and_says_so(exported):
    _, template, m = exported
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = read_mask(template, m)
    assert not mask.any()
    kinds = [w.category for w in caught]
    assert kinds == [NothingMasked]
    assert (f"{template}: excludes no pixel of scan 'scan' (nothing black, True or inside a "
            "shape): every measured pixel is used") in str(caught[0].message)


def test_the_template_is_light_everywhere_with_contrast_and_nan_in_grey(exported):
    _, template, m = exported
    im = Image.open(template)
    assert im.mode == "RGB" and im.size == (48, 36)  # one pixel a sensor
    rgb = np.asarray(im)[::-1].astype(int)  # as the map's rows
    luma = np.asarray(im.convert("L"))[::-1] / 255
    assert luma.min() >= MIN_LUMA > 0.5  # the saturated spot and the NaN corner too
    nan = np.isnan(m.bz)
    assert (rgb[nan] == NOT_MEASURED).all()
    assert not (rgb[~nan] == NOT_MEASURED).all(axis=1).any()  # grey only where not measured
    # the saturated spot does not set the range: the dipoles still span the colour scale
    redness = (rgb[..., 0] - rgb[..., 2])[~nan]
    assert redness.max() > 100 and redness.min() < -100
    assert rgb[20, 30, 0] - rgb[20, 30, 2] == redness.max()  # the spot: full red


def test_the_template_is_oriented_as_the_maps_x_and_y(tmp_path):
    """A 7 × 5 map on x 300..312 µm, y -40..-32 µm: one spot above the median at the highest
    x and lowest y, one below it at the lowest x and highest y. Painting the image pixel that
    shows the first masks that sensor, by its coordinates."""
    x = (300 + 2 * np.arange(7)) * UM
    y = (-40 + 2 * np.arange(5)) * UM
    bz = np.zeros((5, 7))
    bz[0, 6], bz[4, 0] = 1e-6, -1e-6  # row 0 is y = -40 µm
    h5, out = tmp_path / "s.h5", tmp_path / "t.png"
    write_map_entry(h5, MapData(bz=bz, x=x, y=y, name="asym"), kind="scan")
    assert main(["export", str(h5), "--entry", "asym", "--mask-template", str(out)]) == 0
    rgb = np.asarray(Image.open(out)).astype(int)
    assert rgb.shape == (5, 7, 3)
    bottom_right, top_left = rgb[-1, -1], rgb[0, 0]
    assert bottom_right[0] > bottom_right[2] + 50  # red: above the median, as drawn
    assert top_left[2] > top_left[0] + 50  # blue: below it
    assert (rgb[1:-1] == 255).all()  # the rest at the median: white
    im = Image.open(out)
    ImageDraw.Draw(im).point((6, 4), fill=(0, 0, 0))  # the red pixel, (column, row)
    im.save(out)
    m = read_map(h5, "asym")
    (j,), (i,) = np.nonzero(read_mask(out, m))
    assert (m.x[i], m.y[j]) == (x.max(), y.min())


def test_a_photograph_of_the_map_in_greys_is_still_warned_of(tmp_path):
    """A picture in dark and light greys (not the light template) loses its dark half."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    field = np.cumsum(rng.standard_normal((40, 50)), 0) + np.cumsum(
        rng.standard_normal((40, 50)), 1)
    x = np.arange(50) * UM
    path = tmp_path / "photo.png"
    plt.imsave(path, field, cmap="gray")
    with pytest.warns(MaskWarning, match="it looks like a picture, not a mask"):
        read_mask(path, MapData(bz=np.zeros((40, 50)), x=x, y=x[:40], name="scan"))


def test_a_map_of_unequal_steps_is_drawn_unstretched_and_read_back_sensor_for_sensor(tmp_path,
                                                                                    capsys):
    """12 × 6 sensors at 2 µm in x and 5 µm in y (24 × 30 µm) were drawn 12 × 6 pixels, a
    picture squashed to a fifth of its height in µm. Drawn in 2 µm pixels, 12 × 15, each pixel
    shows the sensor under its centre; black on the pixel at a sensor's centre (found from the
    µm, not from the drawing) masks that sensor alone, and the unpainted image nothing."""
    x = (100 + 2 * np.arange(12)) * UM
    y = (-20 + 5 * np.arange(6)) * UM
    bz = np.zeros((6, 12))
    bz[0, -1], bz[-1, 0] = 1e-6, -1e-6  # lowest y at the highest x: red; the opposite: blue
    h5, out = tmp_path / "s.h5", tmp_path / "t.png"
    write_map_entry(h5, MapData(bz=bz, x=x, y=y, name="rect"), kind="scan")
    assert main(["export", str(h5), "--entry", "rect", "--mask-template", str(out)]) == 0
    assert ("12 × 15 pixels (its 12 × 6 sensors drawn in pixels of equal size in µm"
            in capsys.readouterr().out)
    rgb = np.asarray(Image.open(out)).astype(int)
    assert rgb.shape == (15, 12, 3)
    red = rgb[..., 0] > rgb[..., 2] + 50
    blue = rgb[..., 2] > rgb[..., 0] + 50
    # the red sensor spans y -22.5 .. -17.5 µm: the bottom 2.5 pixels; the blue one the top
    assert red[-2:, -1].all() and red.sum() in (2, 3) and blue[:2, 0].all() and blue.sum() in (2, 3)
    m = read_map(h5, "rect")
    with pytest.warns(NothingMasked):
        assert not read_mask(out, m).any()
    chosen = [(0, 0), (3, 7), (5, 11), (2, 4)]  # (row j, column i) of the map
    im = Image.open(out)
    top, left, pixel = y.max() + 2.5 * UM, x.min() - 1 * UM, 2 * UM
    for j, i in chosen:  # the image pixel under sensor (i, j)'s centre
        column, row = int((x[i] - left) / pixel), int((top - y[j]) / pixel)
        ImageDraw.Draw(im).point((column, row), fill=(0, 0, 0))
    im.save(out)
    want = np.zeros(m.shape, bool)
    want[tuple(np.array(chosen).T)] = True
    np.testing.assert_array_equal(read_mask(out, m), want)


def test_an_image_of_neither_shape_of_a_map_of_unequal_steps_is_refused_naming_both(
        tmp_path, monkeypatch):
    from smm_daq.analysis import mask_template
    from smm_daq.errors import InputError

    x, y = np.arange(12) * 2 * UM, np.arange(6) * 5 * UM
    m = MapData(bz=np.zeros((6, 12)), x=x, y=y, name="rect")
    path = tmp_path / "square.png"
    Image.new("L", (30, 30), 255).save(path)
    with pytest.raises(InputError, match=r"its 12 × 6 sensors \(width/height 2\), or its extent "
                       r"in µm \(12 × 15 pixels of equal size"):
        read_mask(path, m)
    monkeypatch.setattr(mask_template, "MAX_PIXELS", 179)  # too many: one pixel a sensor
    assert mask_template.image_size(m) == (12, 6)


def grid(columns: int, rows: int, dx_um: float, dy_um: float) -> MapData:
    """A map of `columns` × `rows` sensors at the steps given, its Bz a gradient."""
    x, y = np.arange(columns) * dx_um * UM, np.arange(rows) * dy_um * UM
    return MapData(bz=1e-9 * (np.arange(rows)[:, None] + np.arange(columns)), x=x, y=y,
                   name="scan")


@pytest.mark.parametrize("columns, rows, dx_um, dy_um, size", [
    (5, 5, 1.0, 3000.0, (5, 5)),  # its extent 5 × 15000: one pixel a sensor
    (500, 500, 1.0, 9.0, (500, 500)),  # its extent 500 × 4500: a side too long
    (10, 100, 1.0, 10.0, (10, 100)),  # its extent 10 × 1000, far more elongated than the grid
    (12, 6, 2.0, 5.0, (12, 15)),  # its extent
    (100, 10, 1.0, 10.0, (100, 100)),  # its extent, square
    (1000, 2, 1.0, 2.0, (1000, 4)),  # its extent, elongated as its grid is
])
def test_a_template_is_an_image_to_paint_on_and_read_back_sensor_for_sensor(
        tmp_path, columns, rows, dx_um, dy_um, size):
    """5 × 5 sensors at 1 µm × 3 mm steps were drawn 5 × 15000 pixels, each sensor a strip
    3000 pixels long: the scan's extent is drawn where that makes an image to paint on, else
    one pixel a sensor; black under any sensor's centre masks that sensor alone either way."""
    from smm_daq.analysis.mask_template import write_mask_template

    m = grid(columns, rows, dx_um, dy_um)
    path = write_mask_template(m, tmp_path / "t.png")
    im = Image.open(path)
    assert im.size == size
    w, h = size
    rng = np.random.default_rng(columns + rows)
    want = np.zeros(m.shape, bool)
    for j, i in zip(rng.integers(0, rows, 6), rng.integers(0, columns, 6), strict=True):
        want[j, i] = True  # the image pixel under its centre (top row: the highest y)
        ImageDraw.Draw(im).point((int((i + 0.5) * w / columns),
                                  h - 1 - int((j + 0.5) * h / rows)), fill=(0, 0, 0))
    im.save(path)
    np.testing.assert_array_equal(read_mask(path, m), want)


def test_a_template_of_the_extent_as_written_before_is_still_read(tmp_path):
    """An image of the scan's extent in µm, as templates of very unequal steps were drawn
    (5 × 15000 pixels for 5 × 5 sensors at 1 µm × 3 mm), painted, still reads as painted."""
    from smm_daq.analysis.mask_template import extent_size

    m = grid(5, 5, 1.0, 3000.0)
    assert extent_size(m) == (5, 15000)
    white = np.full((15000, 5), 255, np.uint8)
    white[-6000:-3000, 3] = 0  # sensor (j 1, i 3): rows 3000 to 6000 from the bottom
    Image.fromarray(white).save(tmp_path / "old.png")
    want = np.zeros((5, 5), bool)
    want[1, 3] = True
    np.testing.assert_array_equal(read_mask(tmp_path / "old.png", m), want)


def test_the_command_says_a_template_of_very_unequal_steps_is_stretched(tmp_path, capsys):
    h5, out = tmp_path / "s.h5", tmp_path / "t.png"
    write_map_entry(h5, grid(5, 5, 1.0, 3000.0), kind="scan")
    assert main(["export", str(h5), "--entry", "scan", "--mask-template", str(out)]) == 0
    assert ("5 × 5 pixels (one a sensor, stretched: x and y steps too unequal for an image of "
            "the scan's extent in µm, the top row the highest y)") in capsys.readouterr().out


def strokes(template: Path, out: Path, width_px: float, count: int) -> np.ndarray:
    """`count` straight anti-aliased black strokes `width_px` wide across the template (drawn at
    UP× and averaged down), saved as `out`; returns each pixel's paint coverage."""
    im = Image.open(template).convert("RGB")
    w, h = im.size
    big = im.resize((w * UP, h * UP), Image.Resampling.NEAREST)
    cover = Image.new("L", big.size, 0)
    ends = np.random.default_rng(3).uniform(0, 1, (count, 4)) * ([w * UP, h * UP] * 2)
    for canvas, ink in ((ImageDraw.Draw(big), (0, 0, 0)), (ImageDraw.Draw(cover), 255)):
        for line in ends:
            canvas.line(list(line), fill=ink, width=round(width_px * UP))
    big.resize((w, h), Image.Resampling.BOX).save(out)
    return np.asarray(cover.resize((w, h), Image.Resampling.BOX), float) / 255


@pytest.mark.parametrize("width_px", [0.75, 1.0, 1.25])
def test_many_strokes_too_thin_to_reach_black_are_not_warned_of(exported, tmp_path, width_px):
    """A stroke under 1.25 px covers no pixel whole: its greys are beside no black, and many
    of them read as "a picture, not a mask". Across the stroke they are at most 2 px wide."""
    _, template, m = exported
    out = tmp_path / "hatched.png"
    coverage = strokes(template, out, width_px, 40)[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        mask = read_mask(out, m)
    assert mask[coverage > 0.55].all() and not mask[coverage == 0].any()  # 0.5: rounding


def test_heavy_soft_brush_painting_is_not_warned_of(exported, tmp_path):
    """A soft brush fades its paint out over a few pixels, in many shades beside no black;
    painted over twice, its cores are black and its edges wide grey rings."""
    from PIL import ImageFilter

    _, template, m = exported
    im = np.asarray(Image.open(template).convert("RGB"), float)
    h, w = im.shape[:2]
    hard = Image.new("L", (w, h), 0)
    for line in np.random.default_rng(5).uniform(0, 1, (12, 4)) * ([w, h] * 2):
        ImageDraw.Draw(hard).line(list(line), fill=255, width=3)
    alpha = np.asarray(hard.filter(ImageFilter.GaussianBlur(3)), float) / 255
    alpha = np.clip(2 * alpha, 0, 1)  # twice over
    out = tmp_path / "soft.png"
    Image.fromarray(np.round(im * (1 - alpha[..., None])).astype(np.uint8)).save(out)
    assert np.mean((alpha > 0.1) & (alpha < 0.9)) > 0.2  # wide soft edges
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        mask = read_mask(out, m)
    alpha = alpha[::-1]
    assert mask[alpha > 0.5].all() and not mask[alpha < 0.1].any()


def test_a_smooth_map_in_a_colour_map_is_still_warned_of(tmp_path):
    """A map's dark areas, wider than a soft brush's edge, are not taken for paint."""
    import matplotlib.pyplot as plt
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(np.random.default_rng(2).standard_normal((40, 50)), 3)
    x = np.arange(50) * UM
    for cmap in ("viridis", "gray"):
        path = tmp_path / f"{cmap}.png"
        plt.imsave(path, field, cmap=cmap)
        with pytest.warns(MaskWarning, match="it looks like a picture, not a mask"):
            read_mask(path, MapData(bz=np.zeros((40, 50)), x=x, y=x[:40], name="scan"))


def test_an_existing_file_is_refused_and_untouched_without_overwrite(exported, capsys):
    h5, out, _ = exported
    out.write_bytes(b"the user's painted mask")
    capsys.readouterr()
    assert main(["export", str(h5), "--entry", "scan", "--mask-template", str(out)]) == 2
    err = capsys.readouterr().err
    assert (f"--mask-template is '{out}', which exists; expected a new file name (or "
            "--overwrite to replace it): nothing was written") in err
    assert out.read_bytes() == b"the user's painted mask"
    assert main(["export", str(h5), "--entry", "scan", "--mask-template", str(out),
                 "--overwrite"]) == 0
    assert Image.open(out).size == (48, 36)


@pytest.mark.parametrize("argv, said", [
    (["--dataset", "nope"], "--dataset is 'nope', which the entry does not hold"),
    (["--mask-template", "{tmp}/t.tif"], "--mask-template is '{tmp}/t.tif'; expected a file "
                                        "name ending in .png"),
    (["--png", "{tmp}/t.png"], "--mask-template and --png both name '{tmp}/t.png'"),
    (["--entry", "nope"], "nope"),
])
def test_bad_inputs_are_refused_by_name_writing_nothing(exported, tmp_path, capsys, argv, said):
    h5, _, _ = exported
    before = set(tmp_path.iterdir())
    argv = [a.format(tmp=tmp_path) for a in argv]
    template = "--mask-template" if "--mask-template" not in argv else "--csv"
    capsys.readouterr()
    assert main(["export", str(h5), "--entry", "scan", template, str(tmp_path / "t.png"),
                 *argv]) == 2
    assert said.format(tmp=tmp_path) in capsys.readouterr().err
    assert set(tmp_path.iterdir()) == before


def test_a_place_that_cannot_be_written_is_refused(exported, tmp_path, capsys, monkeypatch):
    from smm_daq.cli import args

    def denied(*_: object, **__: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    h5, _, _ = exported
    monkeypatch.setattr(args.tempfile, "TemporaryFile", denied)
    out = tmp_path / "locked" / "t.png"
    out.parent.mkdir()
    capsys.readouterr()
    assert main(["export", str(h5), "--entry", "scan", "--mask-template", str(out)]) == 2
    assert (f"--mask-template is '{out}', which cannot be written (Permission denied)"
            in capsys.readouterr().err)
    assert not out.exists()


def test_a_joint_inversions_other_scan_has_its_own_template(tmp_path, capsys):
    """Scans a and a smaller crop of b inverted together: b's residual (its bad pixels stand
    out there) is exported on b's grid, painted, and read as b's mask in the next inversion."""
    h5, a, bc = two_scans(tmp_path)
    assert bc.shape != a.shape
    grains = ["--grain-format", "points", "--grains", str(DATA / "grains_points.txt"),
              "--sigma-nT", "1"]
    assert main(["mmt", "invert", str(h5), "--entry", "a", "--entry", "bc", *grains,
                 "--out", str(tmp_path / "r.csv"), "--result-entry", "joint"]) == 0
    templates = {s: tmp_path / f"{s}.png" for s in ("a", "bc")}
    for scan, out in templates.items():
        assert main(["export", str(h5), "--entry", "joint", "--dataset",
                     f"scans/{scan}/residual_Bz", "--mask-template", str(out)]) == 0
    assert f"the map of 'bc' to paint a mask on, {bc.shape[1]} × {bc.shape[0]} pixels" in \
        capsys.readouterr().out
    im = Image.open(templates["bc"])
    assert im.size == (bc.shape[1], bc.shape[0])
    ImageDraw.Draw(im).rectangle((0, 0, 2, 1), fill=(0, 0, 0))  # top left: high y, low x
    im.save(templates["bc"])
    assert main(["mmt", "invert", str(h5), "--entry", "a", "--entry", "bc", *grains,
                 "--mask", str(templates["a"]), "--mask", str(templates["bc"]),
                 "--out", str(tmp_path / "r2.csv"), "--result-entry", "masked"]) == 0
    with h5py.File(h5) as f:
        assert "mask" not in f["masked/scans/a"] or not f["masked/scans/a/mask"][()].any()
        got = f["masked/scans/bc/mask"][()].astype(bool)
    want = np.zeros(bc.shape, bool)
    want[-2:, :3] = True
    np.testing.assert_array_equal(got, want)


def two_scans(tmp_path: Path) -> tuple[Path, MapData, MapData]:
    """A session of scan 'a' and 'bc', a crop of another: a joint inversion's two grids."""
    h5 = tmp_path / "s.h5"
    for name in ("a", "b"):
        assert main(["import", "mpe", str(DATA / "MetaDict_mpe_demo.json"),
                     str(DATA / "MagneticSample_mpe_demo.npz"), "--out", str(h5),
                     "--name", name]) == 0
    b = read_map(h5, "b")
    xs, ys = b.x[2:-3] / UM, b.y[1:-2] / UM
    assert main(["crop", str(h5), "--entry", "b", "--name", "bc",
                 "--x-um", f"{xs[0]},{xs[-1]}", "--y-um", f"{ys[0]},{ys[-1]}"]) == 0
    return h5, read_map(h5, "a"), read_map(h5, "bc")


def test_one_command_writes_each_scans_image_as_the_mmt_tab_does(tmp_path, capsys):
    """--entry and --mask-template given once per scan, in mmt invert's order: each image on
    its scan's own grid, and the --mask list to give mmt invert said."""
    h5, a, bc = two_scans(tmp_path)
    out = {s: tmp_path / f"{s}.png" for s in ("a", "bc")}
    capsys.readouterr()
    assert main(["export", str(h5), "--entry", "a", "--entry", "bc",
                 "--mask-template", str(out["a"]), "--mask-template", str(out["bc"])]) == 0
    said = capsys.readouterr().out
    for scan, m in (("a", a), ("bc", bc)):
        assert Image.open(out[scan]).size == (m.shape[1], m.shape[0])
        assert f"wrote {out[scan]}: the map of '{scan}' to paint a mask on" in said
        with pytest.warns(NothingMasked):  # unpainted: read on its scan's grid
            assert read_mask(out[scan], m).shape == m.shape
    assert (f"the masks of mmt invert --entry a --entry bc, once painted: --mask {out['a']} "
            f"--mask {out['bc']}") in said


@pytest.mark.parametrize("argv, said", [
    (["--entry", "a", "--entry", "bc", "--mask-template", "{tmp}/a.png"],
     "1 --mask-template for --entry a, bc; expected one image per --entry, in its order"),
    (["--entry", "a", "--mask-template", "{tmp}/a.png", "--mask-template", "{tmp}/b.png"],
     "2 --mask-template for --entry a; expected one image per --entry"),
    (["--entry", "a", "--entry", "a", "--mask-template", "{tmp}/a.png", "--mask-template",
      "{tmp}/b.png"], "--entry names a more than once; expected each scan once"),
    (["--entry", "a", "--entry", "nope", "--mask-template", "{tmp}/a.png", "--mask-template",
      "{tmp}/b.png"], "nope"),
    (["--entry", "a", "--entry", "bc", "--mask-template", "{tmp}/a.png", "--mask-template",
      "{tmp}/a.png"],
     "--mask-template of --entry bc and --mask-template of --entry a both name '{tmp}/a.png'"),
    (["--entry", "a", "--entry", "bc", "--mask-template", "{tmp}/a.png", "--mask-template",
      "{tmp}/b.png", "--csv", "{tmp}/a.csv"],
     "--csv with 2 --entry and 2 --mask-template; expected one --entry for --csv"),
    (["--entry", "a", "--entry", "bc", "--mask-template", "{tmp}/a.png", "--mask-template",
      "{tmp}/s.h5"], "--mask-template is '{tmp}/s.h5', an HDF5 file (perhaps a session file)"),
])
def test_bad_lists_of_scans_and_images_are_refused_writing_nothing(tmp_path, capsys, argv,
                                                                    said):
    h5, _, _ = two_scans(tmp_path)
    before = set(tmp_path.iterdir())
    capsys.readouterr()
    assert main(["export", str(h5), *(a.format(tmp=tmp_path) for a in argv)]) == 2
    assert said.format(tmp=tmp_path) in capsys.readouterr().err
    assert set(tmp_path.iterdir()) == before
