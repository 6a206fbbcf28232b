"""Registering an image of the sample onto a map by control points, as the seed's figures
overlay thin-section images: click a feature on the image, then the same feature on the map;
three or more pairs fix the affine transform (`smm_daq.analysis.optical`)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from gui.map_view import MapView
from smm_daq.analysis.optical import MIN_POINTS, ImageRegistration, fit_affine
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
COLUMNS = ("image column", "image row", "x (µm)", "y (µm)")


def underlay_transform(matrix: np.ndarray) -> QtGui.QTransform:
    """The QTransform placing an ImageItem of the image in a map view (µm).

    An ImageItem's pixel (column j, row i) covers [j, j + 1] × [i, i + 1] of its own
    coordinates, so its centre is (j + ½, i + ½); the registration maps pixel centres.
    """
    a = np.asarray(matrix, dtype=float) / UM
    shift = a[:, 2] - 0.5 * (a[:, 0] + a[:, 1])
    return QtGui.QTransform(a[0, 0], a[1, 0], a[0, 1], a[1, 1], shift[0], shift[1])


class _ClickableView(pg.PlotWidget):
    """A plot that reports left clicks in its data coordinates."""

    clicked = QtCore.pyqtSignal(float, float)

    def __init__(self) -> None:
        super().__init__()
        self.scene().sigMouseClicked.connect(self._clicked)

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        p = self.getPlotItem().vb.mapSceneToView(event.scenePos())
        self.clicked.emit(p.x(), p.y())


class RegistrationDialog(QtWidgets.QDialog):
    """Image on the left, map on the right, control point pairs in a table below."""

    def __init__(self, image: np.ndarray, m: MapData, *, image_name: str = "",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Register {image_name or 'an image'} onto {m.name}")
        self.image = np.asarray(image)
        self._registration: ImageRegistration | None = None

        self.image_view = _ClickableView()
        self.image_view.getPlotItem().vb.setAspectLocked(True)
        self.image_view.getPlotItem().vb.invertY(True)  # row 0 at the top, as in the picture
        self.image_view.addItem(pg.ImageItem(self.image, axisOrder="row-major", levels=(0, 255)))
        self.image_view.clicked.connect(lambda u, v: self.add_pixel(u - 0.5, v - 0.5))
        self.image_marks = pg.ScatterPlotItem(symbol="+", size=14, pen=pg.mkPen("m", width=2))
        self.image_view.addItem(self.image_marks)

        self.map_view = MapView(title=m.name)
        self.map_view.set_map(m)
        self.map_view.graphics.scene().sigMouseClicked.connect(self._map_clicked)
        self.map_marks = pg.ScatterPlotItem(symbol="+", size=14, pen=pg.mkPen("m", width=2))
        self.map_view.plot.addItem(self.map_marks, ignoreBounds=True)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.itemChanged.connect(lambda _item: self._refit())
        remove = QtWidgets.QPushButton("Remove point")
        remove.clicked.connect(self._remove_selected)
        self.name_edit = QtWidgets.QLineEdit("optical")
        self.result = QtWidgets.QLabel(
            "Click a feature on the image, then the same feature on the map; "
            f"at least {MIN_POINTS} pairs, not on one line."
        )
        self.result.setWordWrap(True)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Save
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.save_button.setEnabled(False)

        views = QtWidgets.QSplitter()
        views.addWidget(self.image_view)
        views.addWidget(self.map_view)
        form = QtWidgets.QHBoxLayout()
        form.addWidget(QtWidgets.QLabel("Entry name"))
        form.addWidget(self.name_edit)
        form.addWidget(remove)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(views, 3)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)
        layout.addWidget(self.result)
        layout.addWidget(self.buttons)
        self.resize(1200, 800)

    @property
    def save_button(self) -> QtWidgets.QPushButton:
        return self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Save)

    @property
    def registration(self) -> ImageRegistration | None:
        """The fit over the complete pairs, or None while it is not determined."""
        return self._registration

    # --- control points ------------------------------------------------------------------
    def _row_missing(self, first_col: int) -> int:
        """The first row whose cell `first_col` is empty, or -1."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, first_col)
            if item is None or not item.text().strip():
                return row
        return -1

    def _set_pair(self, first_col: int, a: float, b: float) -> None:
        row = self._row_missing(first_col)
        if row < 0:
            row = self.table.rowCount()
            self.table.insertRow(row)
        self.table.blockSignals(True)
        self.table.setItem(row, first_col, QtWidgets.QTableWidgetItem(f"{a:.2f}"))
        self.table.setItem(row, first_col + 1, QtWidgets.QTableWidgetItem(f"{b:.2f}"))
        self.table.blockSignals(False)
        self._refit()

    def add_pixel(self, column: float, row: float) -> None:
        """A control point on the image (pixel centres at whole numbers)."""
        self._set_pair(0, column, row)

    def add_point(self, x: float, y: float) -> None:
        """The same point on the map, in m."""
        self._set_pair(2, x / UM, y / UM)

    def _map_clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        p = self.map_view.view_box.mapSceneToView(event.scenePos())
        self.add_point(p.x() * UM, p.y() * UM)

    def _remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for row in rows or [self.table.rowCount() - 1]:
            if row >= 0:
                self.table.removeRow(row)
        self._refit()

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Complete pairs: pixels (n, 2) and points (n, 2) in m; rows with a blank or a
        value that is not a number are left out."""
        pixels, points = [], []
        for row in range(self.table.rowCount()):
            cells = [self.table.item(row, c) for c in range(4)]
            try:
                values = [float(c.text()) for c in cells]  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                continue
            pixels.append(values[:2])
            points.append([values[2] * UM, values[3] * UM])
        return np.array(pixels).reshape(-1, 2), np.array(points).reshape(-1, 2)

    def _refit(self) -> None:
        pixels, points = self.pairs()
        self.image_marks.setData(pixels[:, 0] + 0.5, pixels[:, 1] + 0.5)
        self.map_marks.setData(points[:, 0] / UM, points[:, 1] / UM)
        try:
            self._registration = fit_affine(pixels, points)
        except InputError as exc:
            self._registration = None
            self.result.setText(str(exc))
        else:
            reg = self._registration
            self.result.setText(
                f"{len(pixels)} pairs: RMS misfit {reg.rms / UM:.2f} µm; one image pixel is "
                f"{reg.pixel_size / UM:.3g} µm on the sample"
            )
        self.save_button.setEnabled(self._registration is not None
                                    and bool(self.name_edit.text().strip()))
