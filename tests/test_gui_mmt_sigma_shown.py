"""The MMT tab says a result's noise σ as `mmt invert` and `info` do: in nT, to 4
significant digits (it said µT to 3, so 2861 nT read 2.86 µT there and 2861 nT here)."""

from __future__ import annotations

import dataclasses

from test_gui_mmt_scale import result_of

from gui.grain_outlines import grain_segments
from gui.mmt_view import MMTView
from smm_daq.instruments.profile import load_profile

NT = 1e-9


def test_the_tab_says_sigma_in_nt_as_the_command_line_does(qtbot) -> None:
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    data, result, table = result_of(3)
    result = dataclasses.replace(result, sigma=2861.4 * NT, sigmas=(2861.4 * NT,))
    view._done(([data], result, table, [], {}, grain_segments(result.grains), ""))
    assert "σ = 2861 nT (from the residual)" in view.status.text(), view.status.text()
