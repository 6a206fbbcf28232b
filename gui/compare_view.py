"""Remanent, in-field and induced maps side by side, zooming and panning together, on one
colour scale (a choice): each on its own scale, a ±2 µT map and a ±10 µT map looked alike."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from gui.map_geometry import symmetric_level
from gui.map_view import MapView
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import EntryInfo

ROLES = ("remanent", "in-field", "induced")
ZERO_FIELD_T = 1e-8  # a scan below this applied field counts as remanent (zero field)


def guess_roles(entries: list[EntryInfo]) -> dict[str, str]:
    """Which entries to show first: the newest induced map and the two scans it came from,
    else the newest zero-field scan and the newest in-field scan."""
    roles: dict[str, str] = {}
    names = {e.name for e in entries}
    for info in reversed(entries):
        if info.kind == "induced" and len(info.sources) == 2 and set(info.sources) <= names:
            roles = {"induced": info.name, "in-field": info.sources[0],
                     "remanent": info.sources[1]}
            return roles
    for info in reversed(entries):
        if info.shape is None or info.kind != "scan" or info.applied_field is None:
            continue
        role = (
            "remanent"
            if float(np.linalg.norm(info.applied_field)) < ZERO_FIELD_T
            else "in-field"
        )
        roles.setdefault(role, info.name)
    return roles


class CompareView(QtWidgets.QWidget):
    """Three map views with an entry chooser above each; zoom is linked across them."""

    def __init__(self, load: Callable[[str, Callable[[MapData], None]], None],
                 parent: QtWidgets.QWidget | None = None) -> None:
        """`load(entry, show)` reads an entry's map off the GUI thread, then calls `show(map)`
        in it (or never, when it could not be read: it says why)."""
        super().__init__(parent)
        self._load = load
        # what the user picked for each role (the file's entries are read again after every
        # scan and write: a pick must outlive that; the guess fills the others)
        self.picked: dict[str, str] = {}
        # the map views are built when first wanted (the tab shown, or `views` asked for):
        # their plots were half the window's construction, and most sessions never compare.
        # Until then nothing is read or drawn: the choosers, the outlines and the underlay
        # say what the views will show once built
        self._views: dict[str, MapView] | None = None
        self._outlines: np.ndarray | None = None
        self._underlay: tuple[np.ndarray, QtGui.QTransform] | None = None
        self._columns: dict[str, QtWidgets.QVBoxLayout] = {}
        self.choosers: dict[str, QtWidgets.QComboBox] = {}
        self.shared_scale = QtWidgets.QCheckBox("One colour scale for the three maps")
        self.shared_scale.setChecked(True)
        self.shared_scale.setToolTip("Colour the three maps on the range of the largest |Bz| "
                                     "of them all, so that a weaker map looks weaker; "
                                     "unticked, each map on its own range (its title says it)")
        self.shared_scale.toggled.connect(lambda _on: self._show_scales())
        outer = QtWidgets.QVBoxLayout(self)
        outer.addWidget(self.shared_scale)
        layout = QtWidgets.QHBoxLayout()
        outer.addLayout(layout, 1)
        for role in ROLES:
            column = QtWidgets.QVBoxLayout()
            chooser = QtWidgets.QComboBox()
            chooser.setToolTip(f"the {role} map")
            chooser.currentTextChanged.connect(lambda name, r=role: self.show_entry(r, name))
            chooser.activated.connect(lambda _i, r=role: self._pick(r))  # the user's choice
            column.addWidget(chooser)
            layout.addLayout(column, 1)
            self._columns[role] = column
            self.choosers[role] = chooser

    @property
    def views(self) -> dict[str, MapView]:
        """The map view of each role, built (under its chooser) the first time it is asked
        for: the same views, whenever they are made."""
        return self._built_views()

    def _built_views(self) -> dict[str, MapView]:
        if self._views is None:
            self._views = {}
            for role in ROLES:
                view = MapView(title=role)
                self._columns[role].addWidget(view, 1)
                self._views[role] = view
            first = self._views[ROLES[0]]
            for role in ROLES[1:]:
                self._views[role].link_to(first)
            for role, view in self._views.items():
                if self._outlines is not None:
                    view.set_outlines(self._outlines)
                if self._underlay is not None:
                    view.set_underlay(*self._underlay)
                self.show_entry(role, self.choosers[role].currentText())
        return self._views

    def setVisible(self, visible: bool) -> None:
        """Shown (as its tab is chosen): its views are built first, so they are shown with it."""
        if visible:
            self._built_views()
        super().setVisible(visible)

    def set_entries(self, entries: list[EntryInfo]) -> None:
        """Offer the file's map entries (each shown read anew); for each role the entry the
        user picked, while the file holds it, else the likely remanent / in-field /
        induced."""
        names = [e.name for e in entries if e.shape is not None]
        roles = {**guess_roles(entries),
                 **{r: n for r, n in self.picked.items() if n == "" or n in names}}
        for role, chooser in self.choosers.items():
            with QtCore.QSignalBlocker(chooser):
                chooser.clear()
                chooser.addItems(["", *names])
                chooser.setCurrentText(roles.get(role, ""))
            # read anew, or emptied: a role this file has no map for shows none, not the map
            # of the file open before
            self.show_entry(role, chooser.currentText())

    def _pick(self, role: str) -> None:
        self.picked[role] = self.choosers[role].currentText()

    def forget_picks(self) -> None:
        """Another file is open: its entries are guessed afresh."""
        self.picked.clear()

    def show_entry(self, role: str, entry: str) -> None:
        """Show `entry` in the view of `role` once it is read (none: empty the view); views not
        yet built read nothing (they read their choosers' entries when built)."""
        if self._views is None:
            return
        if not entry:
            self._views[role].clear()
            self._show_scales()
            return
        self._load(entry, lambda m: self._loaded(role, entry, m))

    def _loaded(self, role: str, entry: str, m: MapData) -> None:
        if self.choosers[role].currentText() != entry:
            return  # another entry was chosen while this one was read
        self.views[role].set_map(m)
        self._show_scales()

    def _show_scales(self) -> None:
        """Each map's colour range: the largest of the maps shown (`shared_scale`), else its
        own; its title names the entry and the range."""
        if self._views is None:
            return
        own = {role: symmetric_level(view.map.bz) for role, view in self._views.items()
               if view.map is not None}
        for role, level in own.items():
            view = self._views[role]
            if self.shared_scale.isChecked():
                level = max(own.values())
            view.set_level(level)
            q = view.quantity
            # on two lines: on one, the title held the plot wider than its pane (a plot is at
            # least as wide as its title), which cut off the colour bar
            view.plot.setTitle(f"{role}: {html.escape(self.choosers[role].currentText())}<br>"
                               f"(colours ±{level / q.scale:.3g} {q.unit})")

    def fit(self) -> None:
        """Zoom all three to the first map shown (linked views with locked aspect ratios widen
        each other's ranges when resized while hidden; this resets them), and again as they
        are resized, till the user zooms; views not yet built are fitted as they are built."""
        if self._views is not None:
            shown = [view for view in self._views.values() if view.map is not None]
            (shown or [self._views[ROLES[0]]])[0].fit()

    def set_outlines(self, segments: np.ndarray) -> None:
        """Line segments (M, 2, 2) in m over the three maps, now or once they are built."""
        self._outlines = segments
        for view in (self._views or {}).values():
            view.set_outlines(segments)

    def set_underlay(self, image: np.ndarray, transform: QtGui.QTransform) -> None:
        """A registered image under the three maps, now or once they are built."""
        self._underlay = (image, transform)
        for view in (self._views or {}).values():
            view.set_underlay(image, transform)

    def clear_underlay(self) -> None:
        self._underlay = None
        for view in (self._views or {}).values():
            view.clear_underlay()
