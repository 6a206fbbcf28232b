"""A grain file refused while the outlines on show wait to be placed anew: they are taken
off, not left where the grains no longer are."""

from __future__ import annotations

import pytest

from gui.session_browser import SessionBrowser
from smm_daq.analysis.mmt.registration import GrainRegistration

UM = 1e-6
WAIT_MS = 60_000
CUBOID = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n"


@pytest.fixture
def browser(qtbot):
    b = SessionBrowser()
    qtbot.addWidget(b)
    return b


def segment_ends(view) -> set[tuple[float, float]]:
    """The ends of the outline segments a view draws, in µm, rounded to 1 nm."""
    xs, ys = view.outlines.getData()
    if xs is None:
        return set()
    return {(round(float(x), 3), round(float(y), 3)) for x, y in zip(xs, ys, strict=True)}


def drawn(browser, qtbot, path) -> None:
    with qtbot.waitSignal(browser.grainsLoaded, timeout=WAIT_MS):
        browser.load_grains(path)
    assert segment_ends(browser.map_view) == {(15, 5), (25, 5), (25, 15), (15, 15)}


def test_a_refused_grain_file_takes_off_outlines_waiting_to_be_placed_anew(
    browser, qtbot, tmp_path
):
    """The grains are shifted (their redraw waits for the changes to stop), then another
    grain file is chosen and refused (the placement turns cuboids): the outlines drawn
    before, no longer where the grains lie, are taken off, and the note says none."""
    grains, other = tmp_path / "grains.csv", tmp_path / "other.csv"
    grains.write_text(CUBOID)
    other.write_text(CUBOID)
    drawn(browser, qtbot, grains)
    browser.grain_registration = lambda: GrainRegistration(
        shift=(7 * UM, 0.0, 0.0), rotation_deg=45.0
    )
    browser.grain_placement_changed()
    assert browser.placement_timer.isActive()
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS) as refused:
        browser.load_grains(other)
    assert "--grains-rotation-deg is 45 with cuboid grains" in refused.args[0]
    assert segment_ends(browser.map_view) == set()
    assert "grains.csv" not in browser.grain_note.text()
    assert not browser.placement_timer.isActive()


def test_a_grain_file_failing_in_the_worker_takes_off_outlines_waiting_to_be_placed_anew(
    browser, qtbot, tmp_path
):
    """As above, the other file refused once read (it is no grain file)."""
    grains, other = tmp_path / "grains.csv", tmp_path / "other.csv"
    grains.write_text(CUBOID)
    other.write_text("not a grain file\n")
    drawn(browser, qtbot, grains)
    browser.grain_registration = lambda: GrainRegistration(shift=(7 * UM, 0.0, 0.0))
    browser.grain_placement_changed()
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS):
        browser.load_grains(other)
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert segment_ends(browser.map_view) == set()
    assert "grains.csv" not in browser.grain_note.text()


def test_a_refused_grain_file_leaves_outlines_placed_as_they_lie(browser, qtbot, tmp_path):
    """No change of placement waiting: a refused file leaves the outlines drawn, still
    right, on show."""
    grains, other = tmp_path / "grains.csv", tmp_path / "other.csv"
    grains.write_text(CUBOID)
    other.write_text("not a grain file\n")
    drawn(browser, qtbot, grains)
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS):
        browser.load_grains(other)
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert segment_ends(browser.map_view) == {(15, 5), (25, 5), (25, 15), (15, 15)}
    assert "grains.csv" in browser.grain_note.text()
