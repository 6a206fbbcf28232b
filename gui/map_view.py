"""One map on screen: symmetric colour scale, cursor read-out, line profile, area selection.

Axes are shown in µm and Bz in µT (converted here, at the edge); the map itself stays SI.
Other quantities on the same grid (χ, magnetization, their standard deviations) are shown
with their own name and unit (`Quantity`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets, sip

from gui.lazy_menu import LazyMenuColorBar, LazyMenuViewBox
from gui.map_geometry import (
    SMALLEST_LEVEL_T,
    on_same_grid,
    pixel_at,
    pixel_rect,
    profile_along,
    symmetric_level,
)
from gui.row_image import RowImageItem
from gui.spaced_axis import SpacedAxis
from smm_daq.storage.mapdata import MapData

UM = 1e-6
UT = 1e-6


@dataclass(frozen=True)
class Quantity:
    """What a map view shows: a name, the unit shown and the SI value of one such unit."""

    name: str
    unit: str
    scale: float
    format: str = ".4g"  # of the read-out

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name


BZ = Quantity("Bz", "µT", UT, ".3f")
COLOUR_MAP = "CET-D1"  # diverging: blue negative, white zero, red positive
TITLE_POINTS = 11  # a plot's title's font size, as pyqtgraph's

# Light plots for every view of the application (the diverging map is white at zero).
pg.setConfigOptions(background="w", foreground="k", antialias=True)


class _SelectingViewBox(LazyMenuViewBox):
    """A ViewBox that, in selection mode, draws a rectangle with a left-button drag."""

    sigDragged = QtCore.pyqtSignal(object, object, bool)  # start, end (view µm), finished

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=False)
        self.selecting = False

    def mouseDragEvent(self, ev, axis=None):
        if self.selecting and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            start = self.mapSceneToView(ev.buttonDownScenePos())
            end = self.mapSceneToView(ev.scenePos())
            self.sigDragged.emit(start, end, ev.isFinish())
            return
        super().mouseDragEvent(ev, axis)

    def _menu_built(self) -> None:
        """The context menu's range settings (View All, an axis's range or auto range) are the
        user's too: told as the mouse's and keys' are, so the range is kept as the view is
        resized, not set back to the one a program wanted."""
        built = self.menu is not None
        super()._menu_built()
        if built or self.menu is None:
            return
        told = [self.menu.viewAll.triggered]
        for ctrl in self.menu.ctrl:
            told += [ctrl.minText.editingFinished, ctrl.maxText.editingFinished,
                     ctrl.autoRadio.clicked, ctrl.autoPercentSpin.valueChanged]
        for signal in told:
            signal.connect(lambda *_: self.sigRangeChangedManually.emit(self.state["mouseEnabled"]))


class _TitleLabel(pg.LabelItem):
    """A plot's title that does not widen its plot: a plot is at least as wide as its title,
    so a long file or quantity name pushed the colour bar out of the view. Its least width
    is none; a title wider than the plot is shown elided in the middle, line by line (the
    whole of it, `text`, in the tooltip)."""

    def __init__(self, *args, **kwargs) -> None:
        self._eliding = False
        super().__init__(*args, **kwargs)

    def updateMin(self) -> None:
        super().updateMin()
        height = self._sizeHint[QtCore.Qt.SizeHint.MinimumSize][1]
        self._sizeHint[QtCore.Qt.SizeHint.MinimumSize] = (0, height)
        self.setMinimumWidth(0)
        self.updateGeometry()

    def resizeEvent(self, ev) -> None:
        if not self._eliding:
            self._elide()
        super().resizeEvent(ev)

    def _elided(self) -> bool:
        return self.itemRect().width() > self.width() + 0.5

    def _elide(self) -> None:
        """Show the whole title, or where it is wider than the label, each of its lines
        elided in the middle to the label's width."""
        whole, self._eliding = self.text, True
        try:
            super().setText(whole)
            elided = self._elided() and self.width() > 0
            if elided:
                font = QtGui.QFont(self.item.font())
                font.setPointSizeF(TITLE_POINTS)
                metrics = QtGui.QFontMetricsF(font)
                room = max(self.width() - 2 * self.item.document().documentMargin() - 4, 0)
                lines = [QtGui.QTextDocumentFragment.fromHtml(line).toPlainText()
                         for line in whole.split("<br>")]
                super().setText("<br>".join(
                    html.escape(metrics.elidedText(line, QtCore.Qt.TextElideMode.ElideMiddle,
                                                   room)) for line in lines))
            self.text = whole
            self.setToolTip(whole if elided else "")
        finally:
            self._eliding = False


def _title_elided(plot: pg.PlotItem) -> None:
    """Give `plot` a `_TitleLabel` in the place of its own title label."""
    plain = plot.titleLabel
    plot.layout.removeItem(plain)
    plain.setParentItem(None)
    if plain.scene() is not None:
        plain.scene().removeItem(plain)
    plot.titleLabel = _TitleLabel("", size=f"{TITLE_POINTS}pt", parent=plot)
    plot.layout.addItem(plot.titleLabel, 0, 1)


class MapView(QtWidgets.QWidget):
    """Shows a MapData; `set_bz` refreshes a map being filled without touching the view."""

    areaSelected = QtCore.pyqtSignal(float, float, float, float)  # x0, y0, x1, y1 in m
    readout = QtCore.pyqtSignal(str)

    def __init__(self, title: str = "", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._map: MapData | None = None
        self._title = title
        self.level_T = 0.0  # half-width of the colour range, SI (T for Bz)
        self.quantity = BZ
        # where the cursor last was over the map (m): its read-out follows the map under it
        self._cursor: tuple[float, float] | None = None
        # the view that holds the range of this one (itself, or the view it is linked to), and
        # what sets that range again as the views are resized (fits the map, shows an area), till
        # the user pans or zooms: a map fitted while its view was small (a hidden tab's pane),
        # or an area shown then, was left small in the middle of the view at its real size.
        # What is held is the view that wanted it (its map fitted, an area shown) and how
        self._lead: MapView = self
        self._wanted: tuple[MapView, Callable[[], None]] | None = None

        self.view_box = _SelectingViewBox()
        self.graphics = pg.GraphicsLayoutWidget()
        self.plot = self.graphics.addPlot(viewBox=self.view_box,
                                          axisItems={"bottom": SpacedAxis("bottom")})
        _title_elided(self.plot)
        self.plot.setTitle(title or None)
        self.plot.setLabel("bottom", "x", units="µm")
        self.plot.setLabel("left", "y", units="µm")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.underlay = pg.ImageItem(axisOrder="row-major")
        self.underlay.setZValue(-10)
        self.underlay.hide()
        self.plot.addItem(self.underlay, ignoreBounds=True)
        self.image = RowImageItem()
        self.plot.addItem(self.image)
        self.colour_bar = LazyMenuColorBar(
            colorMap=pg.colormap.get(COLOUR_MAP), label=BZ.label, interactive=False, width=15
        )
        self.colour_bar.setImageItem(self.image, insert_in=self.plot)
        self.colour_bar.hide()  # shown with a map: over no map it gave a scale of nothing
        self._show_axes(False)  # nor axes of -0.5 … 0.5 µm

        self.outlines = pg.PlotCurveItem(pen=pg.mkPen((20, 20, 20), width=1), connect="pairs")
        self.plot.addItem(self.outlines, ignoreBounds=True)
        self.area = pg.RectROI([0, 0], [1, 1], pen=pg.mkPen("g", width=2), movable=True)
        self.area.hide()
        self.plot.addItem(self.area, ignoreBounds=True)
        self.area.sigRegionChangeFinished.connect(self._area_changed)
        self.view_box.sigDragged.connect(self._dragged)
        self.view_box.sigResized.connect(self._resized)
        # the plot's: the view box's, and its auto range button's ('A') too
        self.plot.sigRangeChangedManually.connect(self.keep_range)

        self.line = pg.LineSegmentROI([[0, 0], [1, 1]], pen=pg.mkPen("k", width=2))
        self.line.hide()
        self.plot.addItem(self.line, ignoreBounds=True)
        self.line.sigRegionChanged.connect(self._update_profile)
        # whether the line was placed across a map yet: one turned on before any map is
        # placed across the first map to come
        self._line_placed = False
        # the line profile's plot, built when first shown (a plot costs as much to build as
        # the map's own, and most views never show their profile)
        self._profile: tuple[pg.PlotWidget, pg.PlotDataItem] | None = None

        self.readout_label = QtWidgets.QLabel("x, y, Bz: move the cursor over the map")
        self.readout_label.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        self.readout_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        # a narrow view (the MMT tab's panes) wraps it: cut off, its Bz was never seen
        self.readout_label.setWordWrap(True)
        self.select_button = QtWidgets.QToolButton(text="Select area", checkable=True)
        self.select_button.setToolTip("Drag a rectangle on the map to set the scan grid")
        self.select_button.toggled.connect(self._set_selecting)
        self.profile_button = QtWidgets.QToolButton(text="Line profile", checkable=True)
        self.profile_button.toggled.connect(self.show_profile)
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(70)
        self.opacity.setMaximumWidth(120)
        self.opacity.setToolTip("Opacity of the map over the image of the sample")
        self.opacity.valueChanged.connect(self._set_opacity)
        self.opacity.hide()

        tools = QtWidgets.QHBoxLayout()
        tools.addWidget(self.readout_label, 1)
        tools.addWidget(self.opacity)
        tools.addWidget(self.select_button)
        tools.addWidget(self.profile_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(tools)  # the profile's plot goes between the two once built
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)

    # --- content -------------------------------------------------------------------------
    @property
    def map(self) -> MapData | None:
        return self._map

    @property
    def profile_plot(self) -> pg.PlotWidget:
        """The line profile's plot (hidden until the profile is shown)."""
        return self._profile_widgets()[0]

    @property
    def profile_curve(self) -> pg.PlotDataItem:
        return self._profile_widgets()[1]

    def _profile_widgets(self) -> tuple[pg.PlotWidget, pg.PlotDataItem]:
        if self._profile is None:
            plot = pg.PlotWidget(viewBox=LazyMenuViewBox())
            plot.setLabel("bottom", "distance", units="µm")
            plot.setLabel("left", self.quantity.name, units=self.quantity.unit)
            for axis in ("bottom", "left"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
            curve = plot.plot(pen=pg.mkPen("b", width=2))
            plot.setMaximumHeight(180)
            plot.hide()
            layout = self.layout()
            assert isinstance(layout, QtWidgets.QVBoxLayout)
            layout.insertWidget(1, plot)  # under the map, above the tools
            self._profile = plot, curve
        return self._profile

    def set_quantity(self, quantity: Quantity) -> None:
        """Show the maps that follow as `quantity` (their `bz` array holds its SI values)."""
        self.quantity = quantity
        self.colour_bar.setLabel("left", quantity.label)
        if self._profile is not None:  # else labelled so when built
            self.profile_plot.setLabel("left", quantity.name, units=quantity.unit)

    def set_map(self, m: MapData, quantity: Quantity = BZ, *, keep_range: bool = False
                ) -> None:
        """Show a new map, fitting the view to it (and again as its views are resized, until the
        range is set otherwise); `quantity` says what its values are. `keep_range`: another
        quantity of the map shown (its SD, the Bz it was computed from) keeps the range shown,
        zoomed on a grain or fitted, when it lies on the same grid; on another it is fitted."""
        if quantity != self.quantity:
            self.set_quantity(quantity)
        kept = keep_range and self._map is not None and on_same_grid(self._map, m)
        self._map = m
        self.colour_bar.show()
        self._show_axes(True)
        left, bottom, width, height = pixel_rect(m)
        self.image.setImage(m.bz / self.quantity.scale, autoLevels=False)
        self.image.setRect(QtCore.QRectF(left / UM, bottom / UM, width / UM, height / UM))
        self._apply_levels()
        if not kept:
            self.fit()  # this view's map held: the lead may have none, or another
        if self.line.isVisible() and not self._line_placed:
            self._place_line(m)
        self._update_profile()
        self._show_readout()

    def clear(self) -> None:
        """Show no map (the one shown belonged to a file no longer open), its title, read-out
        and line profile gone with it; outlines and an image under it are set on their own."""
        self._map = None
        self.image.clear()
        self.colour_bar.hide()
        self._show_axes(self.underlay.isVisible())
        self.set_quantity(BZ)  # not a χ's or an M's name and unit over no map
        self.plot.setTitle(self._title or None)
        if self._profile is not None:
            self.profile_curve.setData([], [])
        self.area.hide()
        self._cursor = None
        self.readout_label.setText("x, y, Bz: move the cursor over the map")

    def settle_layout(self) -> None:
        """Lay the pane out now, not in the event loop: an axis learns how wide its tick labels
        are only as it is painted (the colour scale's 17 px until then, 62 after), so the
        pane is drawn once off screen first. Its view's size, its range (the aspect is
        locked) and that of the views linked to it are then final at once."""
        self.graphics.grab()
        self.plot.layout.activate()

    def _show_axes(self, shown: bool) -> None:
        """The axes with a map or an image of the sample to read them by; over nothing, none.
        Made transparent, not hidden: hidden, they left the plot no size of its own, and a map
        set while the view was small (the MMT tab's panes) was fitted to a sliver of a view."""
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).setOpacity(1.0 if shown else 0.0)

    def fit(self) -> None:
        """Zoom to the whole map (again as the views are resized, till the user zooms)."""
        self._hold(lambda: self.view_box.autoRange(padding=0.02, items=[self.image]))

    def keep_range(self) -> None:
        """Keep the range as it is when the views are resized (the user panned or zoomed)."""
        self._holder()._wanted = None

    def zoom_to(self, x_um: tuple[float, float], y_um: tuple[float, float]) -> None:
        """Show this area (µm), shown again as the views are resized till the user zooms."""
        self._hold(lambda: self.view_box.setRange(xRange=x_um, yRange=y_um, padding=0))

    def _hold(self, apply: Callable[[], None]) -> None:
        self._holder()._wanted = (self, apply)
        apply()

    def _holder(self) -> MapView:
        """The view that holds this one's range: its lead while linked to it; itself once
        unlinked (the context menu's Link Axis) or its lead deleted (its widget gone)."""
        lead = self._lead
        if lead is not self and (sip.isdeleted(lead.view_box) or not self._linked()):
            self._lead = lead = self
        return lead

    def _linked(self) -> bool:
        """Whether either axis still follows another view, one not deleted."""
        views = (self.view_box.linkedView(0), self.view_box.linkedView(1))
        return any(v is not None and not sip.isdeleted(v) for v in views)

    def _resized(self) -> None:
        """Set the range wanted again: with the aspect ratio locked, a range set in a small view
        (or widened by a linked view's resize) is not the one wanted at the view's size. What
        a view deleted or unlinked since wanted is no longer held."""
        holder = self._holder()
        if holder._wanted is None:
            return
        wanting, apply = holder._wanted
        if sip.isdeleted(wanting.view_box) or wanting._holder() is not holder:
            holder._wanted = None
            return
        apply()

    def set_bz(self, bz: np.ndarray) -> None:
        """Replace Bz on the same grid (a scan filling in); keeps zoom and ROIs."""
        if self._map is None:
            raise RuntimeError("set_map must come before set_bz")
        self._map = self._map.with_bz(bz)
        self.image.setImage(self._map.bz / self.quantity.scale, autoLevels=False)
        self._apply_levels()
        self._update_profile()
        self._show_readout()

    def fill_rows(self, bz: np.ndarray, rows: range) -> None:
        """Bz of a map being filled (a scan), in which only `rows` changed since the last
        call, each pixel only from NaN to a value. `bz` becomes the map, not copied.

        Only `rows` are put into the image and drawn again: redrawing the whole image for a
        few new points made each redraw cost the whole grid (a million pixels, many times a
        line). The colour range widens to the new rows' largest |Bz| when it is beyond it (the
        range of the whole map, as its other pixels are unchanged); then every pixel is
        recoloured, the values not copied. Keeps zoom and ROIs."""
        if self._map is None:
            raise RuntimeError("set_map must come before fill_rows")
        shown = self.image.image
        if shown is None or shown.shape != bz.shape:
            self.set_bz(bz)
            return
        self._map = self._map.with_bz(bz)
        new = bz[rows.start:rows.stop]
        level = symmetric_level(new)
        if level > self.level_T:
            self.level_T = level
            self._show_levels()
        self.image.redraw_rows(new / self.quantity.scale, rows.start)
        self._update_profile()
        self._show_readout()

    def _set_opacity(self, percent: int) -> None:
        self.image.setOpacity(percent / 100)

    def _apply_levels(self) -> None:
        assert self._map is not None
        self.level_T = symmetric_level(self._map.bz)
        self._show_levels()

    def set_level(self, level_T: float) -> None:
        """Colour the map shown on [-level_T, level_T] (SI), not its own range (until the
        map changes)."""
        self.level_T = level_T
        self._show_levels()

    def _show_levels(self) -> None:
        """The colour range [-level_T, level_T] on the colour bar and the image; a map with
        nothing measured yet (or all zero) on ±1 of its unit (±1 µT for Bz), not on its
        least level, which the bar labelled ±1e-06 µT."""
        half = self.level_T / self.quantity.scale if self.level_T > SMALLEST_LEVEL_T else 1.0
        self.colour_bar.setLevels((-half, half))

    def link_to(self, other: MapView) -> None:
        """Pan and zoom together with another view (the range it holds as the views are
        resized is the other's, till either is panned or zoomed)."""
        self.view_box.setXLink(other.view_box)
        self.view_box.setYLink(other.view_box)
        self._lead = other._holder()

    def set_underlay(self, image: np.ndarray, transform: QtGui.QTransform) -> None:
        """Draw an RGB image (rows, columns, 3) under the map, placed by `transform` (image
        item coordinates to view µm, see `gui.image_registration.underlay_transform`); the
        map becomes translucent, its opacity set by the slider."""
        self.underlay.setImage(np.asarray(image), autoLevels=False, levels=(0, 255))
        self.underlay.setTransform(transform)
        self.underlay.show()
        self._show_axes(True)
        self.opacity.show()
        self._set_opacity(self.opacity.value())

    def fit_underlay(self) -> None:
        """Zoom to the image under the map (again as the view is resized, till the user zooms)."""
        self._hold(lambda: self.view_box.autoRange(padding=0.02, items=[self.underlay]))

    def clear_underlay(self) -> None:
        self.underlay.hide()
        self._show_axes(self._map is not None)
        self.opacity.hide()
        self._set_opacity(100)

    def set_outlines(self, segments: np.ndarray) -> None:
        """Draw line segments (M, 2, 2) in m, e.g. grain outlines, over the map."""
        segments = np.asarray(segments, dtype=float).reshape(-1, 2, 2) / UM
        self.outlines.setData(segments[:, :, 0].ravel(), segments[:, :, 1].ravel())

    # --- cursor read-out -----------------------------------------------------------------
    def describe(self, x: float, y: float) -> str:
        """The read-out text for the point (x, y) in m."""
        text = f"x = {x / UM:.1f} µm, y = {y / UM:.1f} µm"
        if self._map is None:
            return text
        hit = pixel_at(self._map, x, y)
        if hit is None:
            return text
        bz = self._map.bz[hit]
        q = self.quantity
        value = (f"{bz / q.scale:{q.format}} {q.unit}".rstrip() if np.isfinite(bz)
                 else "not measured")
        return f"{text}, {q.name} = {value}"

    def _mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        if not self.plot.sceneBoundingRect().contains(scene_pos):
            return
        p = self.view_box.mapSceneToView(scene_pos)
        self._cursor = (p.x() * UM, p.y() * UM)
        self._show_readout(moved=True)

    def _show_readout(self, moved: bool = False) -> None:
        """The read-out at the cursor's last place, of the map shown now: a new map, or a point
        measured under a cursor held still, is not read out with the value before. Told by
        `readout` at each move, and when the map changes what it says."""
        if self._cursor is None:
            return
        text = self.describe(*self._cursor)
        if moved or text != self.readout_label.text():
            self.readout_label.setText(text)
            self.readout.emit(text)

    # --- line profile --------------------------------------------------------------------
    def show_profile(self, on: bool) -> None:
        if on or self._profile is not None:
            self.profile_plot.setVisible(on)
        self.line.setVisible(on)
        if on and self._map is not None:
            self._place_line(self._map)
        self._update_profile()

    def _place_line(self, m: MapData) -> None:
        """The profile's line across the middle of map `m`, over 80 % of its width."""
        left, bottom, width, height = (v / UM for v in pixel_rect(m))
        mid = bottom + height / 2
        self.line.movePoint(0, (left + 0.1 * width, mid), finish=False)
        self.line.movePoint(1, (left + 0.9 * width, mid))
        self._line_placed = True

    def profile_ends(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Ends of the profile line in m."""
        a, b = (self.line.mapToParent(h.pos()) for h in self.line.getHandles())
        return (a.x() * UM, a.y() * UM), (b.x() * UM, b.y() * UM)

    def _update_profile(self) -> None:
        if self._map is None or self._profile is None or not self.profile_plot.isVisible():
            return
        start, end = self.profile_ends()
        distance, bz = profile_along(self._map, start, end)
        self.profile_curve.setData(distance / UM, bz / self.quantity.scale, connect="finite")

    # --- area selection ------------------------------------------------------------------
    def _set_selecting(self, on: bool) -> None:
        self.view_box.selecting = on

    def _dragged(self, start: QtCore.QPointF, end: QtCore.QPointF, finished: bool) -> None:
        self.set_area((start.x() * UM, start.y() * UM), (end.x() * UM, end.y() * UM))
        if finished:
            self._area_changed()

    def set_area(self, corner_a: tuple[float, float], corner_b: tuple[float, float]) -> None:
        """Show the selection rectangle between two corners (m)."""
        x0, x1 = sorted((corner_a[0] / UM, corner_b[0] / UM))
        y0, y1 = sorted((corner_a[1] / UM, corner_b[1] / UM))
        self.area.setPos((x0, y0), finish=False)
        self.area.setSize((max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)), finish=False)
        self.area.show()

    def area_corners(self) -> tuple[float, float, float, float] | None:
        """The selected rectangle (x0, y0, x1, y1) in m, or None."""
        if not self.area.isVisible():
            return None
        pos, size = self.area.pos(), self.area.size()
        return (
            pos.x() * UM,
            pos.y() * UM,
            (pos.x() + size.x()) * UM,
            (pos.y() + size.y()) * UM,
        )

    def _area_changed(self) -> None:
        corners = self.area_corners()
        if corners is not None:
            self.areaSelected.emit(*corners)
