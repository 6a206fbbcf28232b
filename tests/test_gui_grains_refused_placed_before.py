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
    assert "the Registration's turn (then: turned) is 45 with cuboid grains" in refused.args[0]
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


def held_reads(monkeypatch):
    """(started, go): each grain file read in the worker sets `started`, then waits for `go`
    (a large export read for seconds) before it reads the file."""
    import threading

    from gui import grain_outlines

    started, go = threading.Event(), threading.Event()
    shaped_grains = grain_outlines.shaped_grains

    def held(*args, **kwargs):
        started.set()
        go.wait(WAIT_MS / 1000)
        return shaped_grains(*args, **kwargs)

    monkeypatch.setattr(grain_outlines, "shaped_grains", held)
    return started, go


def test_a_second_file_refused_as_it_is_placed_anew_takes_off_the_first_ones_outlines(
    browser, qtbot, tmp_path, monkeypatch
):
    """A is drawn; B, chosen next, is still being read when the grains are turned as the
    cuboid model refuses: B, read again placed anew, is refused, and A's outlines, drawn
    where the grains no longer lie, are taken off; the message names B as refused and says
    A's outlines were taken off. Unfixed, A's outlines stayed on show as if placed, and the
    message said the refusal alone."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(CUBOID)
    b.write_text(CUBOID)
    drawn(browser, qtbot, a)
    started, go = held_reads(monkeypatch)
    browser.load_grains(b)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    browser.grain_registration = lambda: GrainRegistration(rotation_deg=45.0)
    try:
        with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS) as refused:
            browser.grain_placement_changed()  # B read again once the changes stop: refused
    finally:
        go.set()
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    said = browser.message.text()
    assert said == refused.args[0]
    assert said.startswith("Grain outlines of b.csv not drawn: the Registration's turn (then: "
                           "turned) is 45 with cuboid grains"), said
    assert "The outlines of a.csv shown before are taken off" in said
    for view in (browser.map_view, *browser.compare.views.values()):
        assert segment_ends(view) == set()
    assert "a.csv" not in browser.grain_note.text()


def test_a_second_file_failing_as_it_is_read_placed_anew_takes_off_the_first_ones_outlines(
    browser, qtbot, tmp_path, monkeypatch
):
    """As above, B read again placed anew (shifted) and refused in the worker (no grain
    file): A's outlines, placed as before, are taken off."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(CUBOID)
    b.write_text("not a grain file\n")
    drawn(browser, qtbot, a)
    started, go = held_reads(monkeypatch)
    browser.load_grains(b)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    browser.grain_registration = lambda: GrainRegistration(shift=(7 * UM, 0.0, 0.0))
    with qtbot.waitSignal(browser.placement_timer.timeout, timeout=WAIT_MS):
        browser.grain_placement_changed()
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS) as refused:
        go.set()
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert refused.args[0].startswith("Grain outlines of b.csv not drawn: "), refused.args[0]
    assert segment_ends(browser.map_view) == set()
    assert "a.csv" not in browser.grain_note.text()


def test_a_file_refused_after_the_dragonfly_options_changed_takes_off_the_exports_outlines(
    browser, qtbot, tmp_path, monkeypatch
):
    """A Dragonfly export is drawn; another file (cuboids) is being read when the Dragonfly
    options change, so the export is not read again (the other file is wanted); that file is
    refused: the export's outlines, read with the options before, are taken off, and the
    message says so. Unfixed, they stayed on show as if read with the options now."""
    from smm_daq.analysis.mmt.formats.dragonfly import DragonflyOptions

    export, other = tmp_path / "cc.csv", tmp_path / "other.csv"
    export.write_text(
        "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
        "Center Of Mass Z (mm);\n1;672;6.72e-07;0.020;0.015;0.494;\n"
        "2;2;2.0e-09;0.030;0.020;0.495;\n", encoding="utf-8")
    other.write_text("not a grain file\n")
    browser.dragonfly_options = lambda: DragonflyOptions(z_top_mm=0.5)
    with qtbot.waitSignal(browser.grainsLoaded, timeout=WAIT_MS):
        browser.load_grains(export, "dragonfly")
    assert browser.outlines_drawn.startswith("Grain outlines: 2 grains of cc.csv")
    started, go = held_reads(monkeypatch)
    browser.load_grains(other)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    browser.dragonfly_options = lambda: DragonflyOptions(z_top_mm=0.5, min_voxels=700)
    browser.dragonfly_options_changed()
    assert not browser.placement_timer.isActive()  # the file wanted is no Dragonfly export
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS) as refused:
        go.set()
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert refused.args[0].startswith("Grain outlines of other.csv not drawn: ")
    assert "The outlines of cc.csv shown before are taken off" in refused.args[0]
    assert segment_ends(browser.map_view) == set()
    assert "cc.csv" not in browser.grain_note.text()
