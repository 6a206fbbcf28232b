"""Masks of bad pixels for MMT (True = excluded from the inversion), read from three kinds of
file, each for a map of shape (ny, nx) whose row 0 is the lowest y:

* ``.npy``: a boolean array of the map's shape, or numbers all 0 or 1 (integer or float),
  True/1 on the bad pixels (numpy.ma's convention: the mask marks what is invalid; the
  multipole library's `fieldMask` is the opposite, True on the pixels kept, so an array that
  excludes most of the measured pixels is read as it says and warned of);
* an image (``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp``, ``.gif``, ``.webp``):
  black pixels (grey level below half of white at the image's own depth: 128 of 255, 32768 of
  65535) are excluded, as in the multipole library's masks. A transparent pixel shows white
  paper beneath it (unpainted: kept), so black strokes on a transparent layer mark the bad
  pixels as black paint on a copy of the map does. A 32-bit float image (Fiji's) is white at 1,
  255 or 65535, the least its values fit under, and its NaN pixels are excluded; a TIFF stored
  white at 0 (ImageJ's inverting LUT) is read as shown. A camera's orientation tag is honoured,
  as every viewer shows the image; a stack of pages (a multi-page TIFF) is refused, its mask
  page not being known. The image spans the scan's extent with its top row at the highest y, as
  it is drawn; an image of another size but the map's shape (width/height within a pixel's
  rounding), or the shape of the scan's extent in µm (as the template of a map of unequal x and
  y steps is drawn), is resampled to the grid by nearest neighbour at the sensors' centres, and
  one of another shape (a picture with axes around the map) refused. `smm-daq export
  --mask-template` writes the map itself as such an image, in light tones only
  (`smm_daq.analysis.mask_template`), to be painted on;
* ``.json``: ``{"rectangles_um": [[x0, x1, y0, y1], ...], "polygons_um": [[[x, y], ...], ...]}``
  in µm, the pixels whose centres lie inside any shape excluded (even-odd rule); a polygon
  whose edges cross is refused, its outline not enclosing what it appears to, and so is one
  whose outline runs back along itself (a spike out and back, a slit in to a hole), which
  encloses nothing there and leaves the pixel centres on it to rounding.

A mask that excludes no pixel (an unpainted image) is read as it says, and said
(`NothingMasked`): of shapes that all miss the scan, in that one warning naming them and the
scan's extent; a shape that misses beside others that do not, in a `MaskWarning` of its own.
Several scans take one mask each from a list of such files (`mask_for`): one file for all, or
one per scan in order, where ``none`` leaves that scan unmasked.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smm_daq.analysis.masks import polygon_mask, rectangle_mask
from smm_daq.analysis.polygon_sweep import sweep
from smm_daq.errors import InputError
from smm_daq.finite import finite_number
from smm_daq.npy_headers import HEADER_ERRORS, check_npy, load_error_said
from smm_daq.storage.mapdata import MapData
from smm_daq.text_files import load_json, require_file, shown
from smm_daq.thread_warnings import recorded

if TYPE_CHECKING:
    from PIL import Image

UM = 1e-6
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
NO_MASK = "none"  # in a list of masks, one per scan: that scan has none


class MaskWarning(UserWarning):
    """A mask file that may not say what was meant: a shape of it covers no pixel, an image
    looks like a picture rather than a mask, or Pillow found the image damaged."""


class NothingMasked(UserWarning):
    """A mask file excludes no pixel of its scan (an unpainted image, an array of False, no
    shape over the map): read as it says, every measured pixel used, and said, since paint
    saved to another file or a mask meant for another scan would read so too."""


def mask_for(files: Sequence[str], i: int, data: MapData) -> np.ndarray | None:
    """Scan i's mask (`read_mask`) from the `files` given for all the scans: none, one for
    all, or one per scan in order (`NO_MASK`: none for that scan)."""
    if not files:
        return None
    file = files[min(i, len(files) - 1)]
    return None if file == NO_MASK else read_mask(file, data)


def read_mask(path: str | Path, data: MapData) -> np.ndarray:
    """The mask of bad pixels (ny, nx) for `data` from a file; InputError naming the file."""
    path = Path(path)
    source = str(path)
    require_file(path, "mask", "a .npy of booleans, an image or a .json of shapes")
    suffix = path.suffix.lower()
    missed: list[str] = []  # the shapes of a .json that cover no pixel
    if suffix == ".json":
        mask, missed = _from_shapes(path, data)
    elif suffix == ".npy":
        mask = _from_array(path, data)
        _warn_if_mostly_excluded(mask, path, data)
    elif suffix in IMAGE_SUFFIXES:
        mask = _from_image(path, data)
    else:
        raise InputError(f"mask file of type '{suffix}'; expected .npy, .json or an image "
                         f"({', '.join(IMAGE_SUFFIXES)})", source=source)
    measured = np.isfinite(data.bz)
    # the fit would be left nothing, and its message could not say why (nor name this file)
    if mask.all() or (measured.any() and not (measured & ~mask).any()):
        every = "pixel" if mask.all() else f"measured pixel ({int(measured.sum())})"
        raise InputError(f"excludes every {every} of scan '{data.name}'; expected a mask of "
                         "its bad pixels only (True, black or inside a shape: excluded)",
                         source=source)
    if not mask.any() and missed:  # one message, not one per shape and then this
        cover = "covers" if len(missed) == 1 else "cover"
        warnings.warn(f"{source}: excludes no pixel of scan '{data.name}': {', '.join(missed)} "
                      f"{cover} no pixel centre of it (it spans {_extent_um(data)}); expected "
                      "shapes over its bad pixels, in µm. Every measured pixel is used",
                      NothingMasked, stacklevel=3)
    elif not mask.any():
        warnings.warn(f"{source}: excludes no pixel of scan '{data.name}' (nothing black, "
                      "True or inside a shape): every measured pixel is used",
                      NothingMasked, stacklevel=3)
    else:
        for name in missed:  # the others exclude what they cover: each miss said alone
            warnings.warn(f"{source}: {name} covers no pixel centre of scan '{data.name}'; "
                          "expected a shape over its bad pixels, in µm", MaskWarning,
                          stacklevel=2)
    return mask


def _warn_if_mostly_excluded(mask: np.ndarray, path: Path, data: MapData) -> None:
    """An array excluding most of the measured pixels is warned of: it reads as the
    multipole library's `fieldMask` (True on the pixels KEPT, the opposite of ours) would,
    and so inverted it would leave the fit the bad pixels alone, with nothing else to say so."""
    measured = np.isfinite(data.bz)
    n_measured = int(measured.sum())
    n_excluded = int((mask & measured).sum())
    if 2 * n_excluded > n_measured:
        warnings.warn(f"{path}: excludes {n_excluded} of the {n_measured} measured pixels of "
                      f"scan '{data.name}'; expected True (or 1) on the bad pixels only. The "
                      "multipole library's fieldMask is True on the pixels it keeps: save "
                      "~fieldMask for --mask", MaskWarning, stacklevel=3)


def _extent_um(data: MapData) -> str:
    """The pixel centres' x and y range in µm, as a shape of the mask file gives them."""
    return (f"x {data.x.min() / UM:.6g} .. {data.x.max() / UM:.6g} µm, "
            f"y {data.y.min() / UM:.6g} .. {data.y.max() / UM:.6g} µm")


def _from_array(path: Path, data: MapData) -> np.ndarray:
    check_npy(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except HEADER_ERRORS as exc:
        reason = "it holds Python objects" if "pickle" in str(exc) else load_error_said(exc)
        raise InputError(f"is not a numpy array file ({reason}); expected a .npy of booleans "
                         "(or 0/1), the map's shape", source=str(path)) from None
    if not isinstance(arr, np.ndarray):  # np.load opens a zip of arrays whatever its suffix
        names = ", ".join(arr.files)
        arr.close()
        raise InputError(f"is a .npz archive of arrays ({names}), not one array; expected a "
                         ".npy of booleans (or 0/1), the map's shape (np.save)",
                         source=str(path))
    if arr.shape != data.shape:
        transposed = (", the map's transposed (nx, ny)"
                      if arr.ndim == 2 and arr.shape == data.shape[::-1] != data.shape else "")
        raise InputError(f"holds an array of shape {arr.shape}{transposed}; expected the map's "
                         f"{data.shape} (ny, nx): row j is y_j", source=str(path))
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"holds an array of type {arr.dtype}; expected booleans (or 0/1)",
                         source=str(path))
    other = ~np.isin(arr, (0, 1))
    if other.any():  # 255 is white in an image but bad in a mask × 255: either may be meant
        j, i = np.argwhere(other)[0]
        raise InputError(f"holds {arr[j, i].item()!r} at row {j}, column {i} ({arr.dtype}); "
                         "expected only 0 and 1 (or booleans), 1 on the bad pixels: save "
                         "mask > 0 or mask == 0 as meant, or the mask as an image (black: bad)",
                         source=str(path))
    return arr.astype(bool)


def _from_image(path: Path, data: MapData) -> np.ndarray:
    """The image's mask. Pillow's own warnings (a damaged TIFF's "Corrupt EXIF data") are
    held back: one refusal says the image cannot be read, and an image that can is warned of
    once, by name (MaskWarning)."""
    with recorded() as pillow:  # this thread's: another's are neither taken nor lost
        white = _whiteness_of_file(path)
    said = list(dict.fromkeys(" ".join(str(w.message).split()) for w in pillow))
    if said:
        warnings.warn(f"{path}: read, but Pillow warned: {'; '.join(said)}; expected an "
                      "undamaged image: check the mask", MaskWarning, stacklevel=3)
    return _on_grid(white, path, data)


def _whiteness_of_file(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            try:
                pages = getattr(im, "n_frames", 1)
            except (TypeError, KeyError) as exc:  # PIL parsing a damaged TIFF's page list
                raise OSError(f"a damaged list of pages: {exc}") from None
            # a phone's JPEG (MPO) carries previews after the photo; a TIFF's pages are a stack
            if pages > 1 and im.format != "MPO":
                raise InputError(f"holds {pages} pages (an image stack); expected one image, "
                                 "the mask: save its page alone", source=str(path))
            # white at 0 (TIFF PhotometricInterpretation 0, as ImageJ saves an image shown
            # with an inverting LUT): PIL turns 8-bit grey right side up, not 16-bit or float
            white_at_zero = im.format == "TIFF" and im.tag_v2.get(262) == 0
            white = _whiteness(ImageOps.exif_transpose(im), str(path), white_at_zero)
    # a damaged image fails in PIL's decoders with any of these (e.g. a PNG cut short: a
    # SyntaxError "Reached EOF while reading header"); one whose header claims more pixels
    # than PIL decodes (a decompression bomb) with DecompressionBombError
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError) as exc:
        reason = str(exc).replace(f"'{path}'", "it")  # PIL names the file: once is enough
        raise InputError(f"is not a readable image ({reason}); expected a black-and-white "
                         "image of the scan's area", source=str(path)) from None
    return white


def _on_grid(white: np.ndarray, path: Path, data: MapData) -> np.ndarray:
    """The black pixels of an image spanning the scan, on the map's grid."""
    from smm_daq.analysis.mask_template import extent_size, image_size

    ny, nx = data.shape
    h, w = white.shape
    # the scan's extent in equal pixels, as the template draws it unless too large or
    # elongated (then one pixel a sensor): either is taken, an older template of the extent too
    extent = extent_size(data)
    # more than rounding to whole pixels explains, from either shape
    if all(abs(w * sh - h * sw) > max(sw, sh) for sw, sh in {(nx, ny), extent}):
        drawn = (", as export --mask-template draws its unequal x and y steps"
                 if image_size(data) == extent else "")
        either = "" if extent == (nx, ny) else (
            f", or its extent in µm ({extent[0]} × {extent[1]} pixels of equal size{drawn})")
        raise InputError(f"is {w} × {h} pixels (width/height {w / h:.4g}); expected the scan's "
                         f"area alone, its {nx} × {ny} sensors (width/height {nx / ny:.4g})"
                         f"{either} or that shape scaled: crop a picture to the map, without "
                         "the axes, labels or borders around it, which would be stretched over "
                         "the scan", source=str(path))
    _warn_if_a_picture(white, str(path))
    black = white[::-1] < 0.5  # image rows run downward; the map's row 0 is the lowest y
    if black.shape == (ny, nx):
        return black
    # nearest neighbour: pixel centres of both spread evenly over the scan's extent
    rows = np.minimum((np.arange(ny) + 0.5) * black.shape[0] / ny, black.shape[0] - 1)
    cols = np.minimum((np.arange(nx) + 0.5) * black.shape[1] / nx, black.shape[1] - 1)
    return black[np.ix_(rows.astype(int), cols.astype(int))]


GREY = (0.1, 0.9)  # grey: neither near black nor near white (a JPEG's noise stays nearer)
# a picture, not a mask: more of its pixels than this dark grey that no paint explains, in more
# shades than this
GREY_FRACTION = 0.1
GREY_SHADES = 16
# Paint explains a dark grey pixel across which (in a row, column or diagonal) at most this many
# pixels are darker than half grey: an anti-aliased stroke under 2 px wide, reaching no black
THIN_PX = 2
# ... or one this near both black and a kept pixel (chessboard distances summed): a soft brush's
# edge, its paint fading out over at most this many pixels (a picture's dark areas are wider)
FADE_PX = 8


def _warn_if_a_picture(white: np.ndarray, source: str) -> None:
    """A warning when much of the image is dark grey in many shades that no paint explains: the
    coloured map itself, or a photograph, given as the mask would lose every pixel darker
    than half grey without a word. Light tones are kept as white is, so the map drawn in them
    to be painted on (`smm_daq.analysis.mask_template`) is not warned of, painted or not, nor
    is a mask drawn in two greys, or a JPEG's noise at its strokes. Where a brush blends its
    paint with what lies beneath, the greys are explained (`_painted_greys`)."""
    dark = (white > GREY[0]) & (white < 0.5)
    lone = white[dark & ~_painted_greys(white)]
    if lone.size / max(white.size, 1) > GREY_FRACTION and np.unique(lone).size > GREY_SHADES:
        grey = np.count_nonzero((white > GREY[0]) & (white < GREY[1])) / white.size
        warnings.warn(f"{source}: {100 * grey:.0f} % of its pixels are grey, neither near black "
                      "nor near white: it looks like a picture, not a mask; its "
                      f"{100 * np.count_nonzero(dark) / white.size:.0f} % darker than half grey "
                      "are excluded. Expected black paint on white (or on transparent, or on "
                      "the map's image from export --mask-template) over the bad pixels",
                      MaskWarning, stacklevel=5)


def _painted_greys(white: np.ndarray) -> np.ndarray:
    """The pixels that black paint blended with a light background would leave grey: beside
    black (an anti-aliased edge), across a thin line of greys (a stroke too thin to cover any
    pixel whole: no black), or between black and a kept pixel within `FADE_PX` (a soft brush).
    A picture's dark areas are mostly none of these; the few of them that are (a steep edge,
    fine texture) leave the rest to be counted."""
    from scipy.ndimage import distance_transform_cdt

    black, kept = white <= GREY[0], white >= 0.5
    far = 2 * FADE_PX + white.size  # a distance to what the image does not hold
    to_black = distance_transform_cdt(~black, metric="chessboard") if black.any() else far
    to_kept = distance_transform_cdt(~kept, metric="chessboard") if kept.any() else far
    return (to_black <= 1) | (to_black + to_kept <= FADE_PX) | _thin(kept)


def _thin(kept: np.ndarray) -> np.ndarray:
    """Pixels across which, in a row, a column or a diagonal, kept pixels lie at most
    `THIN_PX` apart (the image's border does not count as kept)."""
    pad = THIN_PX
    padded = np.pad(kept, pad)
    h, w = kept.shape

    def at(k: int, dy: int, dx: int) -> np.ndarray:  # kept, k steps along (dy, dx)
        return padded[pad + k * dy:pad + k * dy + h, pad + k * dx:pad + k * dx + w]

    thin = np.zeros_like(kept)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for across in range(1, THIN_PX + 1):  # kept pixels `across` + 1 steps apart
            for back in range(1, across + 1):
                thin |= at(-back, dy, dx) & at(across + 1 - back, dy, dx)
    return thin


def _whiteness(im: Image.Image, source: str, white_at_zero: bool) -> np.ndarray:
    """Each pixel's grey level as a fraction of white at the image's own depth (PIL's
    conversion to 8 bits would clip a 16-bit or float image instead of scaling it): 0 black,
    1 white; transparent pixels show white beneath them."""
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return _wide(np.asarray(im, dtype=float), im.mode == "F", source, white_at_zero)
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(paper, im.convert("RGBA"))
    return np.asarray(im.convert("L"), dtype=float) / 255.0


def _wide(values: np.ndarray, floats: bool, source: str, white_at_zero: bool) -> np.ndarray:
    """A 16- or 32-bit image's grey levels over white: integers (16-bit grey, which PIL may
    also read as 32-bit "I") are white at 65535; a float image (Fiji's) is white at 1, 255 or
    65535, the least of them its values fit under. NaN pixels (Fiji's "NaN background")
    count as black."""
    scales = (1.0, 255.0, 65535.0) if floats else (65535.0,)
    known = values[~np.isnan(values)]
    lo, hi = (float(known.min()), float(known.max())) if known.size else (0.0, 0.0)
    white = next((s for s in scales if hi <= s), None)
    if lo < 0 or white is None:
        kind = "32-bit float" if floats else "16- or 32-bit integer"
        raise InputError(f"is a {kind} image with values {lo:g} .. {hi:g}; expected a "
                         f"mask's grey levels from 0 (black) to white at "
                         f"{' or '.join(f'{s:g}' for s in scales)}", source=source)
    level = 1.0 - values / white if white_at_zero else values / white
    return np.where(np.isnan(values), 0.0, level)


def _numbers(value: object, count: int | None) -> bool:
    return (isinstance(value, list) and (count is None or len(value) == count)
            and all(finite_number(v) for v in value))


def _from_shapes(path: Path, data: MapData) -> tuple[np.ndarray, list[str]]:
    """The mask of the shapes in a .json, and the names of those that cover no pixel centre
    (in the wrong unit or place: the pixels meant would be left in the fit without a word)."""
    source = str(path)
    try:
        spec = load_json(path.read_text(encoding="utf-8-sig"), unique_keys=True)
    except json.JSONDecodeError as exc:
        raise InputError(f"is not JSON: {exc.msg}; expected an object of 'rectangles_um' "
                         "and 'polygons_um'",
                         source=f"{source}, line {exc.lineno}, column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text ({exc})", source=source) from None
    if not isinstance(spec, dict) or not set(spec) <= {"rectangles_um", "polygons_um"}:
        raise InputError("expected a JSON object with keys 'rectangles_um' and/or "
                         "'polygons_um'", source=source)
    for key in spec:
        if not isinstance(spec[key], list):
            raise InputError(f"'{key}' is {shown(spec[key])}; expected a list of shapes in µm",
                             source=source)
    mask = np.zeros(data.shape, bool)
    missed: list[str] = []
    for i, rect in enumerate(spec.get("rectangles_um", [])):
        if not _numbers(rect, 4):
            raise InputError(f"rectangles_um[{i}] is {shown(rect)}; expected [x0, x1, y0, y1] "
                             "in µm", source=source)
        x0, x1, y0, y1 = (v * UM for v in rect)
        shape = rectangle_mask(data, (x0, x1), (y0, y1))
        mask |= shape
        missed += [] if shape.any() else [f"rectangles_um[{i}]"]
    for i, poly in enumerate(spec.get("polygons_um", [])):
        if not (isinstance(poly, list) and len(poly) >= 3
                and all(_numbers(v, 2) for v in poly)):
            raise InputError(f"polygons_um[{i}] is {shown(poly)}; expected at least 3 [x, y] "
                             "vertices in µm", source=source)
        vertices = np.asarray(poly, dtype=float)
        refuse_crossing(f"polygons_um[{i}]", vertices, source)
        shape = polygon_mask(data, vertices * UM)
        mask |= shape
        missed += [] if shape.any() else [f"polygons_um[{i}]"]
    return mask, missed


def refuse_crossing(name: str, vertices: np.ndarray, source: str | None = None) -> None:
    """InputError naming polygon `name` (K, 2) where its edges cross or retrace each other
    (`_crossing`): its outline does not enclose what it appears to; or where it meets itself
    with too many edges near each other to find where (`TangledOutline`)."""
    try:
        crossing = _crossing(vertices)
    except TangledOutline as tangle:
        raise InputError(
            f"{name} touches or crosses itself among its {tangle.vertices:,} vertices, but "
            f"where cannot be found in time: its edges pass near each other in "
            f"{tangle.pairs:,} pairs, beyond the {MAX_TANGLED_PAIRS:,} tested one by one; "
            "expected an outline that neither touches nor crosses itself (read at any number "
            "of vertices), or fewer vertices (a simplified outline)", source=source) from None
    if crossing is not None:
        raise _crossing_refused(name, vertices, *crossing, source)


def _crossing_refused(name: str, vertices: np.ndarray, a: int, b: int, source: str | None
                      ) -> InputError:
    """The refusal of polygon `name` whose edges `a` and `b` cross or retrace each other."""
    edges = f"its edge from vertex {a} to {a + 1}", f"the one from {b} to {(b + 1) % len(vertices)}"
    if _contacts(_unit_scaled(vertices), np.array([a]), np.array([b]), retraced_only=True):
        return InputError(f"{name} runs back along itself: {edges[0]} runs along {edges[1]}; "
                          "expected an outline that passes along each stretch once: a spike "
                          "out and back, or a slit in to a hole and back, encloses nothing and "
                          "leaves the pixel centres on it masked or not by rounding (leave the "
                          "spike out; mask a ring around a hole as two polygons)", source=source)
    return InputError(f"{name} crosses itself: {edges[0]} crosses {edges[1]}; expected a "
                      "polygon that does not, its vertices in order around the outline (a "
                      "rectangle's corners listed across rather than around make a bow tie, "
                      "two triangles masked, not the rectangle)", source=source)


CROSSING_PAIRS = 1 << 20  # pairs of edges tested at once
# Pairs of edges near each other beyond which an outline the sweep finds meeting itself is not
# searched pair by pair for its first crossing (up to 2 s a million pairs on 2 loaded cores,
# and growing with the square of the vertices: 50 million for a star of 10,000 vertices
# touching at its centre): the crossing the sweep found is named, else the outline refused
MAX_TANGLED_PAIRS = 1 << 20


class TangledOutline(Exception):
    """An outline with so many edges near each other (`MAX_TANGLED_PAIRS`) that, meeting
    itself where the sweep found no crossing to name, finding where would take minutes."""

    def __init__(self, vertices: int, pairs: int) -> None:
        super().__init__(vertices, pairs)
        self.vertices, self.pairs = vertices, pairs


# pairs to test per edge beyond which a sweep (`sweep`) goes first: it costs about as
# much as testing this many pairs of edges an edge
SWEEP_PAIRS = 256
# The grid's cell, as a share of the largest |coordinate|, is at least this: cell indices stay
# within int64 whatever the polygon, and the rounding of a coordinate a tiny share of a cell
GRID_FLOOR = 1e-8
GRID_PAD = 1e-3  # cells: each piece's box grown by this, more than any rounding of its ends


def _crossing(vertices: np.ndarray) -> tuple[int, int] | None:
    """The first two edges (by their first vertex) of the closed polygon that cross or retrace
    each other, or None. Edges cross at a point inside both, or where they meet at a vertex the
    outline passes through from one side of the other edge to its other side (a bow tie with
    its middle listed as a vertex); edges that only touch there do not cross: their outline
    still encloses what it appears to. Edges retrace each other where they run along one line
    over a common stretch (`_retraced`): a spike out and back, or a slit, which encloses
    nothing and leaves the pixel centres on it to the rounding of the even-odd rule. An
    outline whose edges near each other are too many to test pair by pair
    (`MAX_TANGLED_PAIRS`) gives a crossing the sweep line found, not always the first, and
    TangledOutline where it found none (it touches itself, or retraces)."""
    vertices = _unit_scaled(vertices)
    k = len(vertices)
    edges = np.arange(k)
    hits = _contacts(vertices, np.minimum(edges, (edges + 1) % k),
                     np.maximum(edges, (edges + 1) % k), retraced_only=True)
    try:
        for ea, eb in _near_pairs(vertices):
            hits += _contacts(vertices, ea, eb)
    except TangledOutline:
        if not hits:  # a crossing is named, if not the first
            raise
    return min(hits) if hits else None


def _unit_scaled(vertices: np.ndarray) -> np.ndarray:
    """The vertices scaled by a power of 2 to within ±1: every turn's sign as before, rounding
    alike, but no product overflows (µm near the float limit) or underflows to 0 (near the
    smallest float, where every turn would read as straight on)."""
    top = float(np.abs(vertices).max())
    return np.ldexp(vertices, -np.frexp(top)[1]) if top else vertices


def _contacts(vertices: np.ndarray, ea: np.ndarray, eb: np.ndarray,
              retraced_only: bool = False) -> list[tuple[int, int]]:
    """The pairs of edges (ea[i], eb[i]) that cross or retrace each other (`_crossing`), or
    only those that retrace (as adjacent edges, meeting at their common vertex, may)."""
    start, end = vertices, np.roll(vertices, -1, axis=0)
    # in exact arithmetic only edges whose boxes overlap meet; so, within rounding, here too
    near = _boxes_overlap(start, end, ea, eb)
    ea, eb = ea[near], eb[near]
    ta, tb = _turn(start[ea], end[ea], start[eb]), _turn(start[ea], end[ea], end[eb])
    sa, sb = _turn(start[eb], end[eb], start[ea]), _turn(start[eb], end[eb], end[ea])
    inline = (ta == 0) & (tb == 0) & (sa == 0) & (sb == 0)  # overlapping or apart
    along = inline.copy()
    along[inline] = _retraced(start[ea[inline]], end[ea[inline]], start[eb[inline]],
                              end[eb[inline]])
    hits = list(zip(ea[along].tolist(), eb[along].tolist(), strict=True))
    if retraced_only:
        return hits
    hit = (ta * tb < 0) & (sa * sb < 0)
    hits += list(zip(ea[hit].tolist(), eb[hit].tolist(), strict=True))
    meet = ~hit & ~inline & (ta * tb <= 0) & (sa * sb <= 0)  # at one point: an end
    a, b = ea[meet], eb[meet]
    # where they meet: the end of one that lies on the other's line
    point = np.where((ta[meet] == 0)[:, None], start[b], np.where(
        (tb[meet] == 0)[:, None], end[b], np.where((sa[meet] == 0)[:, None], start[a], end[a])))
    crosses = _crosses_at(vertices, a, b, point)
    hits += list(zip(a[crosses].tolist(), b[crosses].tolist(), strict=True))
    return hits


def _boxes_overlap(start: np.ndarray, end: np.ndarray, ea: np.ndarray, eb: np.ndarray
                   ) -> np.ndarray:
    """Whether the boxes (x and y ranges) of edges ea[i] and eb[i] overlap, or touch."""
    (low_x, low_y), (high_x, high_y) = np.minimum(start, end).T, np.maximum(start, end).T
    return ((low_x[ea] <= high_x[eb]) & (low_x[eb] <= high_x[ea])
            & (low_y[ea] <= high_y[eb]) & (low_y[eb] <= high_y[ea]))


def _retraced(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Whether each pair of edges p1 -> q1 and p2 -> q2 on one line shares a stretch of more
    than a point, compared along the axis in which the longer of them spans more."""
    d1, d2 = np.abs(q1 - p1), np.abs(q2 - p2)
    axis = (np.maximum(d1[:, 0], d2[:, 0]) < np.maximum(d1[:, 1], d2[:, 1])).astype(int)
    rows = np.arange(len(axis))
    u1, v1, u2, v2 = (r[rows, axis] for r in (p1, q1, p2, q2))
    return (np.maximum(np.minimum(u1, v1), np.minimum(u2, v2))
            < np.minimum(np.maximum(u1, v1), np.maximum(u2, v2)))


def _candidates(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fewer of the pairs to test (`_near_pairs`): edges entered by cell (`_by_cell`) or
    by x range (`_by_x_range`), and how many entries after each are paired with it."""
    start, end = vertices, np.roll(vertices, -1, axis=0)
    return min(_by_cell(vertices), _by_x_range(start, end),
               key=lambda entries: int(entries[1].sum()))


def _near_pairs(vertices: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pairs of edges (a < b) of the closed polygon that share no vertex and whose boxes
    (x and y ranges) overlap, in blocks of about CROSSING_PAIRS: only they can meet. They are
    found among the fewer of the pairs that pass through a common cell of a grid
    (`_by_cell`), and of those whose x ranges overlap (`_by_x_range`): the grid pairs a comb's
    teeth, which all span one x range, with a few neighbours each, not K² pairs; x ranges do
    so where the grid's cells, about an edge long, would each hold many edges (a saw of long
    thin teeth, tiny edges beside a very long one). Where even the fewer are more than
    SWEEP_PAIRS an edge (edges that all pass near each other: a star of long spikes
    converging on one region), a sweep line first (`sweep`): where it finds the edges apart,
    there are none. Where it does not, and the pairs are more than MAX_TANGLED_PAIRS, only
    the two edges it found meeting are given (if any), and then TangledOutline."""
    k = len(vertices)
    start, end = vertices, np.roll(vertices, -1, axis=0)
    edge, counts = _candidates(vertices)
    tested = int(counts.sum())
    if tested > SWEEP_PAIRS * k:
        apart, met = sweep(vertices)
        if apart:
            return
        if tested > MAX_TANGLED_PAIRS:
            if met is not None and met[1] - met[0] > 1 and met[1] - met[0] < k - 1:
                yield np.array([met[0]]), np.array([met[1]])
            raise TangledOutline(k, tested)
    n = len(edge)
    before = np.concatenate([[0], np.cumsum(counts)])  # pairs of the entries before
    i = 0
    while i < n:
        j = max(int(np.searchsorted(before, before[i] + CROSSING_PAIRS, side="right")) - 1,
                i + 1)
        first = np.repeat(np.arange(i, j), counts[i:j])
        second = first + 1 + np.arange(first.size) - np.repeat(before[i:j] - before[i],
                                                               counts[i:j])
        a, b = edge[first], edge[second]
        a, b = np.minimum(a, b), np.maximum(a, b)
        # not edges that share a vertex; those whose boxes overlap (`_contacts`: the others
        # meet no edge), before pairs met in several cells are sorted out
        keep = (b - a > 1) & (b - a < k - 1) & _boxes_overlap(start, end, a, b)
        pairs = np.sort(a[keep] * k + b[keep])  # met in several cells: tested once a block
        pairs = pairs[np.diff(pairs, prepend=-1) != 0]
        yield pairs // k, pairs % k
        i = j


def _by_cell(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges entered in the grid's cells (`_grid_cells`), sorted by cell, each in a cell
    once however many of its pieces are there, and how many entries after each share its
    cell: the pairs to test."""
    cell, edge = _grid_cells(vertices)
    order = np.lexsort((edge, cell))
    cell, edge = cell[order], edge[order]
    once = np.concatenate([[True], (cell[1:] != cell[:-1]) | (edge[1:] != edge[:-1])])
    cell, edge = cell[once], edge[once]
    reach = np.searchsorted(cell, cell, side="right")  # the entries of its cell: before it
    return edge, reach - np.arange(len(cell)) - 1


def _by_x_range(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges sorted by their left end, and how many after each begin within its x range:
    the pairs to test."""
    left, right = np.minimum(start[:, 0], end[:, 0]), np.maximum(start[:, 0], end[:, 0])
    order = np.argsort(left, kind="stable")
    reach = np.searchsorted(left[order], right[order], side="right")  # overlapping: before it
    return order, reach - np.arange(len(order)) - 1


def _grid_cells(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells of a square grid that each edge of the closed polygon passes through (or
    comes within GRID_PAD of), as (cell number, edge) entries. A cell is as wide as the median
    edge's larger extent, or half the mean one's where longer (so that the edges' pieces number
    at most about 3 K), or GRID_FLOOR of the largest |coordinate|; each edge is cut into pieces
    of at most a cell in x and y, each entered in the 1 to 3 × 1 to 3 cells its box meets. Two
    edges that touch or cross so share a cell: each passes through the point where they do."""
    scale = float(np.abs(vertices).max()) or 1.0
    p = vertices / scale  # within ±1: no difference overflows
    d = np.roll(p, -1, axis=0) - p
    extent = np.abs(d).max(axis=1)
    cell = max(float(np.median(extent)), float(extent.mean()) / 2, GRID_FLOOR)
    p, d = p / cell, d / cell  # in cells: |p| ≤ 1 / GRID_FLOOR
    pieces = np.maximum(np.ceil(np.abs(d).max(axis=1)), 1).astype(np.int64)
    edge = np.repeat(np.arange(len(p)), pieces)
    step = np.arange(edge.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    ends = [p[edge] + (d[edge] * ((step + s) / pieces[edge])[:, None]) for s in (0, 1)]
    lo = np.floor(np.minimum(*ends) - GRID_PAD).astype(np.int64)
    hi = np.floor(np.maximum(*ends) + GRID_PAD).astype(np.int64)
    origin = lo.min(axis=0)  # cells numbered from 0
    lo, hi = lo - origin, hi - origin
    rows = int(hi[:, 1].max()) + 1
    cells, edges = [], []
    for dx in range(3):
        for dy in range(3):
            inside = (lo[:, 0] + dx <= hi[:, 0]) & (lo[:, 1] + dy <= hi[:, 1])
            cells.append((lo[inside, 0] + dx) * rows + lo[inside, 1] + dy)
            edges.append(edge[inside])
    return np.concatenate(cells), np.concatenate(edges)


def _crosses_at(vertices: np.ndarray, a: np.ndarray, b: np.ndarray, point: np.ndarray
                ) -> np.ndarray:
    """Whether the outline, where edges a[i] and b[i] meet at point[i] (an end of one or
    both), passes through there along edge b[i] from one side of its passage along a[i] to
    the other."""
    back, on = _passage(vertices, a, point)
    sides = [_side(back, on, way) for way in _passage(vertices, b, point)]
    return sides[0] * sides[1] < 0


def _passage(vertices: np.ndarray, edge: np.ndarray, point: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """The directions from each point[i] back and on along the outline where it passes
    through it on edge[i] (not of length 0): the edge's two ends where the point lies inside
    it, else the vertices before and after the one at the point (repeated vertices
    skipped)."""
    k = len(vertices)
    before, after = _other_neighbours(vertices)
    end = (edge + 1) % k
    back = np.where((vertices[edge] == point).all(axis=1), before[edge], edge)
    on = np.where((vertices[end] == point).all(axis=1), after[end], end)
    return vertices[back] - point, vertices[on] - point


def _other_neighbours(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each vertex, the nearest vertex before it and the nearest after it (around the
    outline) that lie elsewhere: past its repeats."""
    k = len(vertices)
    starts = np.flatnonzero((vertices != np.roll(vertices, 1, axis=0)).any(axis=1))
    if not starts.size:  # one point: no other
        return np.arange(k), np.arange(k)
    run = np.searchsorted(starts, np.arange(k), side="right") - 1  # -1: the run wrapping round
    return (starts[run] - 1) % k, starts[(run + 1) % len(starts)] % k


def _side(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """For each row: 1 where direction `w` lies strictly within the turn counterclockwise from
    `u` to `v`, -1 strictly without it, 0 along `u` or `v` (or when `u` and `v` point the same
    way: a spike, which nothing crosses)."""
    def cross(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]

    def dot(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]

    def along(p: np.ndarray) -> np.ndarray:
        return (cross(p, w) == 0) & (dot(p, w) > 0)

    turn = cross(u, v)
    on_a_side = along(u) | along(v) | ((turn == 0) & (dot(u, v) > 0))
    inside = np.where(turn > 0, (cross(u, w) > 0) & (cross(w, v) > 0), np.where(
        turn < 0,  # more than a half turn: all but the turn from v on to u
        ~((cross(v, w) > 0) & (cross(w, u) > 0)),
        cross(u, w) > 0))  # straight on
    return np.where(on_a_side, 0, np.where(inside, 1, -1))


def _turn(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The sign of each turn p -> q -> r (-1, 0, 1), rows of (x, y)."""
    turn = (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
    return np.sign(turn)
