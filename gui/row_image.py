"""An image item whose rows can be redrawn on their own: the map of a scan filling in.

pyqtgraph's `ImageItem` turns its whole array into a new QImage whenever anything changes, so
each new line of a scan cost the whole grid (a million pixels, many times a line at a rig's
pace). `RowImageItem` keeps its colours in an RGBA buffer that its QImage shares:
`redraw_rows` puts new values in place, colours those rows alone and repaints their strip.
New levels or a new colour map recolour every pixel at the next paint, as they must (every
pixel's colour changes), without copying the values.

The colours are pyqtgraph's own for a float image with levels and a lookup table: a value v
takes entry floor((v - low) · n / (high - low)) of the n-entry table, clipped to the table,
and NaN (not measured) is transparent. Any other kind of image (RGB data, a table given as a
function, an image downsampled for its size) is drawn by pyqtgraph as usual.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui
from pyqtgraph import functions as fn

CHUNK_ROWS = 256  # rows coloured at a time when every row is, so temporaries stay small


class RowImageItem(pg.ImageItem):
    """A row-major `ImageItem` that can redraw some of its rows (`redraw_rows`)."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self._rgba: np.ndarray | None = None  # (rows, columns, 4) colours, shared by qimage
        self._lut_rgba: tuple[object, np.ndarray] | None = None  # (lut it came from, RGBA lut)

    def redraw_rows(self, values: np.ndarray, start: int) -> None:
        """Put `values` (rows, columns) into the image from row `start` and redraw those rows
        alone; the whole image is drawn instead when it must be anyway (new levels, a new
        colour map, nothing drawn yet) or when pyqtgraph draws it."""
        image = self.image
        if image is None:
            raise RuntimeError("redraw_rows needs an image (setImage first)")
        stop = start + values.shape[0]
        image[start:stop] = values
        self._imageHasNans = None  # pyqtgraph's facts about the array no longer hold
        self._imageNanLocations = None
        if self._renderRequired or self._rgba is None or not self._drawn_here():
            self._renderRequired = True
            self.update()
            return
        self._colour(start, stop)
        self.update(QtCore.QRectF(0.0, float(start), float(image.shape[1]), float(stop - start)))

    def render(self) -> None:
        """Colour every pixel into the shared buffer (pyqtgraph's own rendering for the kinds
        of image this item does not draw)."""
        if not self._drawn_here():
            self._rgba = None
            super().render()
            return
        rows, columns = self.image.shape
        if self._rgba is None or self._rgba.shape[:2] != (rows, columns):
            self._rgba = np.empty((rows, columns, 4), dtype=np.uint8)
            self.qimage = fn.ndarray_to_qimage(self._rgba, QtGui.QImage.Format.Format_RGBA8888)
        for start in range(0, rows, CHUNK_ROWS):
            self._colour(start, min(rows, start + CHUNK_ROWS))
        self._renderRequired = False
        self._unrenderable = False

    def _drawn_here(self) -> bool:
        """Whether this item colours the image itself (a 2-D float image with levels and a
        lookup table of RGB(A) bytes, not downsampled)."""
        image, levels, lut = self.image, self.levels, self.lut
        return (image is not None and image.ndim == 2 and image.size > 0
                and image.dtype.kind == "f" and not self.autoDownsample
                and levels is not None and np.shape(levels) == (2,)
                and isinstance(lut, np.ndarray) and lut.dtype == np.uint8 and lut.ndim == 2
                and lut.shape[1] in (3, 4))

    def _rgba_table(self) -> np.ndarray:
        """The lookup table as RGBA bytes (opaque where it has no alpha)."""
        lut = self.lut
        if self._lut_rgba is None or self._lut_rgba[0] is not lut:
            table = np.full((lut.shape[0], 4), 255, dtype=np.uint8)
            table[:, :lut.shape[1]] = lut
            self._lut_rgba = (lut, table)
        return self._lut_rgba[1]

    def _colour(self, start: int, stop: int) -> None:
        """Colour rows start..stop of the image into the buffer."""
        assert self._rgba is not None
        table = self._rgba_table()
        n = table.shape[0]
        low, high = (float(v) for v in self.levels)
        span = (high - low) or 1.0
        scaled = (self.image[start:stop] - low) * (n / span)
        unmeasured = np.isnan(scaled)
        np.clip(scaled, 0, n - 1, out=scaled)
        scaled[unmeasured] = 0
        out = self._rgba[start:stop]
        np.take(table, scaled.astype(np.intp), axis=0, out=out)
        out[..., 3][unmeasured] = 0
