"""An optical (or micro-CT) image of the sample registered onto the map by control points.

The user picks the same features on the image and on a map: image pixels (column, row) and
sample positions (x, y) in m. An affine transform, six parameters, maps one onto the other
(rotation, scale, shear and shift: a photograph through a microscope is close to this), fitted
by least squares over at least three control points not on one line. With more than three
points the residual says how well they agree.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.thread_warnings import recorded

MIN_POINTS = 3
# Control points whose spread has a smaller singular value than this fraction of the largest
# are on one line (or one point): the transform across that line is not determined.
COLLINEAR_RATIO = 1e-6


class ImageWarning(UserWarning):
    """An image was read, but Pillow found it damaged (a cut TIFF, a tag past its end)."""


@dataclass(frozen=True)
class ImageRegistration:
    """The affine map from image pixels to sample positions.

    `matrix` (2, 3): [x, y] = matrix @ [column, row, 1], x and y in m; pixel (0, 0) is the
    centre of the image's first pixel in its first row (the top row of a picture file).
    """

    matrix: np.ndarray
    pixels: np.ndarray  # (n, 2) control points on the image: column, row
    points: np.ndarray  # (n, 2) the same points on the sample: x, y in m
    rms: float  # m, distance between each mapped control pixel and its point, RMS

    def to_sample(self, pixels: np.ndarray) -> np.ndarray:
        """Sample positions (…, 2) in m of image pixels (…, 2) given as (column, row)."""
        pixels = np.asarray(pixels, dtype=float)
        return pixels @ self.matrix[:, :2].T + self.matrix[:, 2]

    @property
    def pixel_size(self) -> float:
        """The mean side of one image pixel on the sample (m): √|det| of the linear part."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def _as_points(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{name} has shape {arr.shape}; expected (n, 2) coordinates")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} holds a value that is not a finite number")
    return arr


def fit_affine(pixels: object, points: object) -> ImageRegistration:
    """Least-squares affine transform taking `pixels` (n, 2) onto `points` (n, 2) in m.

    InputError when there are fewer than three pairs, the counts differ, or either set lies on
    one line (the fit would be undetermined).
    """
    px = _as_points("control pixels", pixels)
    pt = _as_points("control points", points)
    if px.shape[0] != pt.shape[0]:
        raise InputError(
            f"{px.shape[0]} control pixels but {pt.shape[0]} sample points; expected pairs"
        )
    if px.shape[0] < MIN_POINTS:
        raise InputError(
            f"{px.shape[0]} control point pairs; expected at least {MIN_POINTS} (not on one line)"
        )
    for name, arr in (("control pixels", px), ("control points", pt)):
        spread = np.linalg.svd(arr - arr.mean(axis=0), compute_uv=False)
        if spread[0] == 0 or spread[-1] < COLLINEAR_RATIO * spread[0]:
            raise InputError(f"the {name} lie on one line; expected at least three points "
                             "that span an area")
    design = np.column_stack([px, np.ones(len(px))])
    solution, *_ = np.linalg.lstsq(design, pt, rcond=None)
    matrix = solution.T  # (2, 3)
    residual = design @ solution - pt
    rms = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
    return ImageRegistration(matrix=matrix, pixels=px, points=pt, rms=rms)


def load_image(path: str | Path) -> np.ndarray:
    """An image file (PNG, JPEG, TIFF, …) as an RGB array (rows, columns, 3) of uint8, the
    first row at the top of the picture. InputError when it cannot be read as an image; an
    `ImageWarning` naming the file when Pillow read it but found it damaged."""
    rgb, damage = read_image(path)
    if damage:
        warnings.warn(damage, ImageWarning, stacklevel=2)
    return rgb


def largest_image() -> int | None:
    """The most pixels an image `read_image` reads may have (None: no limit set): Pillow
    warns above its `MAX_IMAGE_PIXELS` and refuses an image of more than twice as many."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def read_image(path: str | Path) -> tuple[np.ndarray, str]:
    """`load_image`'s image and, instead of its warning, the warning's text ("" for an
    undamaged image): for a window, which shows it, from a worker thread. Pillow's warnings
    are this thread's alone (`recorded`): another thread's are neither taken nor lost."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:  # Pillow's own warnings held back: a refusal alone, or one warning naming the file
        with recorded() as pillow, Image.open(p) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError("file not found; expected an image file", source=str(p)) from None
    except Image.DecompressionBombError as exc:  # a header claiming a giant image
        raise InputError(f"is too large to read ({exc}); expected an image of at most "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels", source=str(p)) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot be read as an image ({exc}); expected PNG, JPEG or TIFF",
                         source=str(p)) from None
    if rgb.ndim != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise InputError(f"image of shape {rgb.shape}; expected at least 2 × 2 pixels",
                         source=str(p))
    said = list(dict.fromkeys(" ".join(str(w.message).split()) for w in pillow))
    if not said:
        return rgb, ""
    return rgb, (f"{p}: read, but Pillow warned: {'; '.join(said)}; expected an undamaged "
                 "image: check the picture")
