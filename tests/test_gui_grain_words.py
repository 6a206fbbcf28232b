"""A grain file refused in the window names the window's control, not the command line's
option: a file that looks like another format says to choose that format in the grain format
box (the MMT tab's, the Session tab's), not `--grain-format`."""

from __future__ import annotations

from test_gui_mmt import WAIT_MS, open_view, write_cuboid_session

from gui.session_browser import SessionBrowser

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
