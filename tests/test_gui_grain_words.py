"""A grain file refused in the window names the window's control, not the command line's
option: a file that looks like another format says to choose that format in the grain format
box (the MMT tab's, the Session tab's), not `--grain-format`."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from test_gui_mmt import WAIT_MS, open_view, write_cuboid_session

from gui.grain_words import said_in_window
from gui.session_browser import SessionBrowser
from smm_daq.analysis.mmt.formats.dragonfly import (
    DragonflyOptions,
    read_dragonfly,
    with_magnetization,
)
from smm_daq.analysis.mmt.registration import GrainRegistration, check_turn
from smm_daq.errors import InputError

DATA = Path(__file__).parent / "data"

POINTS = "x y z volume label\n1e-5 1e-5 -3e-6 4e-18 1\n"
SAID = "it looks like a points file (choose points as the grain format)"


def test_the_mmt_tab_names_the_grain_format_box(qtbot, tmp_path):
    path, _ = write_cuboid_session(tmp_path)
    points = tmp_path / "p.txt"
    points.write_text(POINTS)
    view = open_view(qtbot, path, points)  # read as cuboids
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert not done.args[0]
    shown = view.status.text()
    assert shown.startswith("Inversion failed: ") and SAID in shown, shown
    assert "--" not in shown, shown


def test_the_session_tab_names_the_grain_format_box(qtbot, tmp_path):
    browser = SessionBrowser()
    qtbot.addWidget(browser)
    points = tmp_path / "p.txt"
    points.write_text(POINTS)
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS) as refused:
        browser.load_grains(points, "cuboids")
    assert refused.args[0].startswith("Grain outlines of p.txt not drawn: ") and SAID in \
        refused.args[0], refused.args[0]
    assert "--" not in refused.args[0]


def _refusal(call) -> str:
    with pytest.raises(InputError) as refused:
        call()
    return str(refused.value)


def test_the_core_s_words_for_grains_name_the_window_s_controls_and_no_option():
    """The refusals and warning of a Dragonfly export, a turn and a crop's saturation, as the
    core says them for the command line, said in the window name no option: each phrase is
    one the window rewords (a core message reworded since would leave its option)."""
    export = DATA / "dragonfly_components.csv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_dragonfly(export)  # no sample top given: warned
    said = [str(w.message) for w in caught] + [
        _refusal(lambda: read_dragonfly(export, DragonflyOptions(min_voxels=10**9))),
        _refusal(lambda: read_dragonfly(export, DragonflyOptions(z_top_mm=1e9))),
        _refusal(lambda: read_dragonfly(export, DragonflyOptions(z_top_mm=-1.0))),
        _refusal(lambda: check_turn(GrainRegistration(rotation_deg=45.0), cuboids=True)),
        _refusal(lambda: with_magnetization({"crop_noise": 0.0}, 1.71e6)),
    ]
    assert len(said) == 6 and all("--" in text for text in said), said
    for text in said:
        assert "--" not in said_in_window(text), said_in_window(text)
    assert "(the Dragonfly options' sample top)" in said_in_window(said[0])
    assert "(Dragonfly: min voxels)" in said_in_window(said[1])
