"""Registered images of the sample (optical or micro-CT) in session files.

One NXentry of kind "optical" per image, so viewers show it as the picture it is:

    /<name>                 NXentry, attrs kind "optical", default "data"
      data                  NXdata, signal "image": image (rows, columns, 3) uint8 RGB
                            (interpretation "rgb-image"), axes row and column (pixel indices)
      registration          NXprocess: program, version, the image file it came from,
                            matrix (2, 3) pixel (column, row, 1) → sample (x, y) m,
                            control_pixels (n, 2), control_points (n, 2) m, rms (m)

The map views draw the newest such image under every map of the same file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.analysis.optical import ImageRegistration, largest_image
from smm_daq.errors import InputError
from smm_daq.storage.checks import corrupt_guard, numeric
from smm_daq.storage.h5file import TEXT, now_iso, read_whole, text, writing
from smm_daq.storage.nexus import check_entry_name
from smm_daq.storage.staging import (
    STAGING,
    check_an_entry,
    clear_unfinished,
    held_as,
    kind_held,
    link_not_written_over,
    put_in,
    staged_name,
)

KIND = "optical"


def write_optical_entry(
    path: str | Path,
    name: str,
    image: np.ndarray,
    registration: ImageRegistration,
    *,
    image_file: str = "",
    title: str = "",
) -> str:
    """Store `image` (rows, columns, 3) uint8 and its registration as a new entry `name`.

    An existing entry of that name raises InputError; nothing in the file is changed then
    but what a writer of that name killed part-way left, made whole or cleared first as
    every writer of a name does (`smm_daq.storage.staging`): an overwrite cut off there is
    finished before the name is judged, never taken over. Like every entry, it is laid out
    under a temporary name and moved in whole.
    """
    source = str(path)
    check_entry_name(name, source=source)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image of shape {image.shape} and type {image.dtype}; expected "
                         "(rows, columns, 3) uint8 RGB", source=source)
    with writing(path) as f:
        # left by a writer that was killed (a replacement settled); an earlier release's
        # whole entry is kept until the new one is whole, and replaced by it then
        superseding = clear_unfinished(f, name, keep_earlier=True)
        if not superseding and f.get(name, getlink=True) is not None:  # a link to nothing
            raise InputError(link_not_written_over(f, name)
                             or f"entry '{name}' already exists and is "
                             f"{held_as(kind_held(f, name))}; expected another name (an "
                             "image never writes over an entry)", source=source)
        # Laid out under a temporary name and moved in whole (see write_map_entry).
        staged = staged_name(name)
        entry = f.create_group(staged)
        entry.attrs[STAGING] = 1
        _layout(entry, image, registration, image_file, title)
        put_in(f, staged, name, replacing=superseding)
    return name


def _layout(entry: h5py.Group, image: np.ndarray, registration: ImageRegistration,
            image_file: str, title: str) -> None:
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["kind"] = KIND
    entry.attrs["default"] = "data"
    entry.create_dataset("title", data=title or f"image of the sample: {image_file}",
                         dtype=TEXT)
    stamp = now_iso()
    for key in ("start_time", "end_time"):
        entry.create_dataset(key, data=stamp, dtype=TEXT)
    entry.create_dataset("status", data="finished", dtype=TEXT)
    program = entry.create_dataset("program_name", data=PROGRAM_NAME, dtype=TEXT)
    program.attrs["version"] = __version__

    data = entry.create_group("data")
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = "image"
    # every dimension named (punx rejects NeXus's "." for one without an axis), in pixel
    # indices: the registration below maps them to the sample, with any rotation
    data.attrs["axes"] = np.array(["row", "column", "channel"], dtype=TEXT)
    data.attrs["row_indices"] = 0
    data.attrs["column_indices"] = 1
    data.attrs["channel_indices"] = 2
    pixels = data.create_dataset("image", data=image, compression="gzip")
    pixels.attrs["interpretation"] = "rgb-image"
    for axis, size, long_name in (("row", image.shape[0], "image row (pixel)"),
                                  ("column", image.shape[1], "image column (pixel)"),
                                  ("channel", 3, "colour (0 red, 1 green, 2 blue)")):
        data.create_dataset(axis, data=np.arange(size)).attrs["long_name"] = long_name

    process = entry.create_group("registration")
    process.attrs["NX_class"] = "NXprocess"
    process.create_dataset("program", data=PROGRAM_NAME, dtype=TEXT)
    process.create_dataset("version", data=__version__, dtype=TEXT)
    process.create_dataset("image_file", data=image_file, dtype=TEXT)
    process.create_dataset("description", dtype=TEXT, data=(
        "affine map from image pixel (column, row, 1) to sample position (x, y), "
        "least squares over the control points"))
    process.create_dataset("matrix", data=registration.matrix).attrs["units"] = "m"
    process.create_dataset("control_pixels", data=registration.pixels)
    process.create_dataset("control_points", data=registration.points).attrs["units"] = "m"
    process.create_dataset("rms", data=registration.rms).attrs["units"] = "m"


def read_optical_entry(path: str | Path, name: str) -> tuple[np.ndarray, ImageRegistration]:
    """The image (rows, columns, 3) uint8 and its registration stored in entry `name`.

    InputError naming the file, entry and dataset when one is missing, of another type or
    shape, or holds what no registration does (a value not finite, a negative RMS, a map from
    pixels to the sample that is singular): drawn under the maps, such an image would be
    misplaced or its colours made up, without a word.
    """
    return read_whole(path, lambda f: _read_optical_entry_in(f, str(path), name))


def _read_optical_entry_in(f: h5py.File, path: str,
                           name: str) -> tuple[np.ndarray, ImageRegistration]:
    """`read_optical_entry` of the session file `f`, open already (at `path`)."""
    source = f"{path}, entry '{name}'"
    with corrupt_guard(source):
        check_an_entry(f, name, path)
        g = f.get(name)
        if not isinstance(g, h5py.Group) or text(g.attrs.get("kind", "")) != KIND:
            raise InputError("is not a registered image; expected an entry of kind "
                             f"'{KIND}'", source=source)
        image = _image(g, source)
        reg = g.get("registration")
        if not isinstance(reg, h5py.Group):
            raise InputError("has no group 'registration'; expected one with matrix, "
                             "control_pixels, control_points and rms", source=source)
        registration = _registration(reg, f"{source}, registration")
    return image, registration


def _image(g: h5py.Group, source: str) -> np.ndarray:
    node = g.get("data/image")
    if not isinstance(node, h5py.Dataset) or node.dtype != np.uint8 or node.ndim != 3 \
            or node.shape[2] != 3 or min(node.shape) == 0:
        what = (f"of type {node.dtype} and shape {node.shape}"
                if isinstance(node, h5py.Dataset) else "missing" if node is None
                else "not a dataset")
        raise InputError(f"'data/image' is {what}; expected (rows, columns, 3) uint8 RGB",
                         source=source)
    rows, columns, _ = node.shape
    limit = largest_image()
    if limit is not None and rows * columns > limit:  # a damaged file: refused, not allocated
        raise InputError(f"'data/image' states {rows} × {columns} pixels; expected an image "
                         f"of at most {limit:,} pixels, the largest {PROGRAM_NAME} reads: "
                         "the entry is damaged", source=source)
    return np.asarray(node[()])


def _registration(reg: h5py.Group, where: str) -> ImageRegistration:
    matrix = numeric(reg, "matrix", where, ndim=2, si="m")
    pixels = numeric(reg, "control_pixels", where, ndim=2)
    points = numeric(reg, "control_points", where, ndim=2, si="m")
    rms = numeric(reg, "rms", where, ndim=0, si="m")
    if matrix.shape != (2, 3):
        raise InputError(f"'matrix' has shape {matrix.shape}; expected (2, 3)", source=where)
    if pixels.shape != points.shape or pixels.shape[1:] != (2,):
        raise InputError(f"'control_pixels' has shape {pixels.shape} and 'control_points' "
                         f"{points.shape}; expected both (n, 2)", source=where)
    for key, values in (("matrix", matrix), ("control_pixels", pixels),
                        ("control_points", points), ("rms", rms)):
        if not np.all(np.isfinite(values)):
            shown = np.array2string(values.ravel(), threshold=6, max_line_width=200)
            raise InputError(f"'{key}' holds {shown}; expected finite numbers", source=where)
    if not rms >= 0:
        raise InputError(f"'rms' is {float(rms)!r} m; expected a distance >= 0", source=where)
    if np.linalg.det(matrix[:, :2]) == 0:
        raise InputError(f"'matrix' {matrix.tolist()!r} maps the image onto a line or a point; "
                         "expected an invertible map from pixels to the sample", source=where)
    return ImageRegistration(matrix=matrix, pixels=pixels, points=points, rms=float(rms))
