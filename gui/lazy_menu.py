"""A pyqtgraph ViewBox whose right-click menu is built when first asked for.

pyqtgraph builds each ViewBox's menu (View All, the X and Y axis panels, mouse mode) with the
view: about a quarter of a plot's construction cost, paid for every plot of the window at
start-up although most of those menus are never opened. Built on first use instead, the
menu and what it offers are the same.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from pyqtgraph.graphicsItems.ViewBox.ViewBoxMenu import ViewBoxMenu


class LazyMenuViewBox(pg.ViewBox):
    """A ViewBox as pyqtgraph's, its menu built on the first right-click (or the first
    `getMenu` / `getContextMenus`) rather than in the constructor."""

    def __init__(self, *args: Any, enableMenu: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, enableMenu=False, **kwargs)
        self.state["enableMenu"] = enableMenu  # the menu itself waits for its first use

    def _menu_built(self) -> None:
        if self.menu is None and self.menuEnabled():
            self.menu = ViewBoxMenu(self)
            self.updateViewLists()  # as pyqtgraph does once it has built a menu: its link lists

    def getMenu(self, ev: Any) -> ViewBoxMenu | None:
        self._menu_built()
        return super().getMenu(ev)

    def getContextMenus(self, event: Any) -> list:
        self._menu_built()
        return super().getContextMenus(event)


class _LazyMenuPlotItem(pg.PlotItem):
    """A PlotItem whose own ViewBox (when none is given) is a `LazyMenuViewBox`."""

    def __init__(self, *args: Any, viewBox: pg.ViewBox | None = None, enableMenu: bool = True,
                 **kwargs: Any) -> None:
        if viewBox is None:
            viewBox = LazyMenuViewBox(enableMenu=enableMenu)
        super().__init__(*args, viewBox=viewBox, enableMenu=enableMenu, **kwargs)


class LazyMenuColorBar(pg.ColorBarItem, _LazyMenuPlotItem):
    """pyqtgraph's ColorBarItem, but for its ViewBox's menu: pyqtgraph builds it with the bar
    and then disables it, so it is never shown; here it is never built (`ColorBarItem`'s
    `super().__init__()` reaches `_LazyMenuPlotItem` before `PlotItem`)."""
