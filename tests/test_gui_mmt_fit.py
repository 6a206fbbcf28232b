"""MMT tab: a result's maps fill their panes once the tab is shown at its size, and a user's
own zoom is kept as the window is resized."""

from __future__ import annotations

import pytest
from test_gui_mmt import TIMEOUT_S, WAIT_MS, write_cuboid_session

from gui.map_geometry import pixel_rect
from gui.map_view import UM, MapView
from gui.mmt_view import MMTView
from smm_daq.instruments.profile import load_profile

pytestmark = pytest.mark.timeout(TIMEOUT_S)


def _fills(view: MapView) -> None:
    """The view's range covers its whole map, which fills most of the pane along the axis
    that limits it (the aspect ratio is locked)."""
    left, bottom, width, height = (v / UM for v in pixel_rect(view.map))
    (x0, x1), (y0, y1) = view.view_box.viewRange()
    assert x0 <= left and x1 >= left + width, (x0, x1, left, width)
    assert y0 <= bottom and y1 >= bottom + height, (y0, y1, bottom, height)
    assert max(width / (x1 - x0), height / (y1 - y0)) > 0.9, view.view_box.viewRange()


def test_a_result_shown_while_the_tab_is_hidden_fills_its_panes_when_shown(qtbot, tmp_path):
    path, grains = write_cuboid_session(tmp_path)
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.set_grain_file(grains)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    view.resize(1300, 800)
    view.show()
    qtbot.waitExposed(view)
    for pane in (view.data_view, view.grain_view, view.residual_view):
        _fills(pane)
