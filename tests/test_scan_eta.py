"""The time left that a scan's events give (`ScanEvent.eta_s`: the command line's ETA, the
window's "about ... left") is the scan's own pace from its first points on, not that of the
stage's way down to the scan height, which the run's first point includes."""

from __future__ import annotations

import re

import pytest

from smm_daq.acquisition.session import Session
from smm_daq.instruments.profile import DEFAULT_PROFILE, Profile, parse_profile


def test_the_time_left_is_near_the_time_the_scan_then_takes(tmp_path) -> None:
    events = []
    session = Session.open(str(tmp_path / "s.h5"), None, time_scale=0)
    try:  # the simulator's stage, referenced at connect, starts 4.9 mm above the scan height
        session.scan("s", center_um=(12500, 12500), size_um=(300, 300), step_um=50,
                     on_event=events.append)
    finally:
        session.close()
    end = events[-1].time
    points = [e for e in events if e.kind == "point"]
    assert points[0].time - events[0].time > 5 * (points[2].time - points[1].time)  # the way down
    for e in points[1:]:
        left = end - e.time
        assert abs(e.eta_s - left) <= 0.25 * left + 0.5, (e.index, e.eta_s, left)


def test_the_time_left_is_the_scan_s_own_pace_not_the_plan_s_estimate(
        tmp_path, monkeypatch) -> None:
    """The plan's estimate far off (a day): after its first points the time left is the pace
    the scan keeps, not that estimate. Unfixed, the first point's reset of the pace ran at
    every point (its count back to 0, then 1 again), so the pace was never used and the time
    left was the estimate's share all along."""
    from smm_daq.acquisition import sequencer
    from smm_daq.acquisition.duration import ScanDuration

    # the sequencer's own estimate (`scan_duration`), not the plan's `estimate_duration`
    monkeypatch.setattr(sequencer, "scan_duration",
                        lambda *_a, **_kw: ScanDuration(0.0, 0.0, 86400.0, 0.0))
    events = []
    session = Session.open(str(tmp_path / "s.h5"), None, time_scale=0)
    try:
        session.scan("s", center_um=(12500, 12500), size_um=(300, 300), step_um=50,
                     on_event=events.append)
    finally:
        session.close()
    end = events[-1].time
    for e in [e for e in events if e.kind == "point"][2:]:
        left = end - e.time
        assert abs(e.eta_s - left) <= 0.25 * left + 0.5, (e.index, e.eta_s, left)


def test_a_flown_scan_s_time_left_is_its_lines_pace_not_the_way_down(tmp_path) -> None:
    """A flown scan's first line also starts from the stage's reference, 4.9 mm above the
    scan height (seconds of the way down, longer than a short line): the pace counts from
    that line's start. Unfixed, the way down was counted as the first line's, and the time
    left after it was more than twice the time the scan then took."""
    events = []
    session = Session.open(str(tmp_path / "s.h5"), None, time_scale=0)
    try:
        session.scan("f", center_um=(12500, 12500), size_um=(100, 20), step_um=10, fly=True,
                     on_event=events.append)
    finally:
        session.close()
    end = events[-1].time
    lines = [e for e in events if e.kind == "line_done"]
    assert len(lines) == 3
    for e in lines[:-1]:
        left = end - e.time
        assert abs(e.eta_s - left) <= 0.1 * left + 0.2, (e.line, e.eta_s, left)


def _scan(tmp_path, profile: Profile | None = None, **kw) -> tuple[list, float, float]:
    """A scan on the simulator: its events, the plan's estimate before the start, and the
    rig-clock time from the start (before the field's ramp up) to the end."""
    events = []
    session = Session.open(str(tmp_path / "s.h5"), profile, time_scale=0)
    try:
        start = session.rig.clock.now()
        session.scan("s", center_um=(12500, 12500), on_event=events.append, **kw)
        plan = session.last_sequencer.plan
        estimate = plan.estimate_duration(session.profile)
    finally:
        session.close()
    return events, estimate, events[-1].time - start


def test_an_in_field_scan_s_time_left_and_estimate_count_the_ramp_down(tmp_path) -> None:
    """40 µT is 0.8 A: 0.8 s of ramping down after the last line. Unfixed, the time left
    after the last line was 0 s, and after each line short by the ramp down."""
    events, estimate, taken = _scan(tmp_path, size_um=(100, 100), step_um=50,
                                    field_uT=(0, 40, 0))
    end = events[-1].time
    lines = [e for e in events if e.kind == "line_done"]
    for e in lines:
        left = end - e.time
        assert abs(e.eta_s - left) <= 0.1, (e.line, e.eta_s, left)
    assert abs(estimate - taken) <= 0.02 * taken, (estimate, taken)


def test_a_step_scan_s_estimate_counts_the_way_down_to_the_first_point(tmp_path) -> None:
    """The simulator's stage, referenced at connect, stands in the middle of its travel,
    4.9 mm above the scan height: 2.45 s of the 4.7 s this small scan takes. Unfixed, the
    estimate left it out."""
    _, estimate, taken = _scan(tmp_path, size_um=(100, 100), step_um=50)
    assert abs(estimate - taken) <= 0.02 * taken, (estimate, taken)


def _sr860_profile() -> Profile:
    text = DEFAULT_PROFILE.read_text().replace('implementation = "sr830"',
                                               'implementation = "sr860"')
    return parse_profile(re.sub(r"reserve = .*\n", "", text), DEFAULT_PROFILE)


@pytest.mark.parametrize("size_um, raster, lockin", [((40, 30), "serpentine", "sr830"),
                                                     ((300, 10), "unidirectional", "sr830"),
                                                     ((40, 30), "serpentine", "sr860")])
def test_a_flown_scan_s_estimate_models_what_each_line_does(tmp_path, size_um, raster,
                                                            lockin) -> None:
    """Short lines (the run-ups, 0.34 s a line here, are most of one) and long ones on a
    unidirectional raster (the way back across the line and its run-ups): each estimate
    within 2 % of the time the scan took; with an SR860 too, whose capture runs on to its
    block's end after each line (0.26 s of each 0.86 s line here). Unfixed, it took ~20
    pixel times of run-up a line and left the way down out: +3.4 % on 5 × 4 (the two errors
    nearly cancelling), -16 % on 31 × 2; the SR860's run-on left out, -18 % on 5 × 4."""
    profile = _sr860_profile() if lockin == "sr860" else None
    _, estimate, taken = _scan(tmp_path, profile, size_um=size_um, step_um=10, fly=True,
                               raster=raster)
    assert abs(estimate - taken) <= 0.02 * taken, (estimate, taken)


def test_the_first_point_s_time_left_no_longer_counts_the_way_down(tmp_path) -> None:
    """The run's first point came down from the stage's reference (2.45 s of this small
    scan's 4.7 s); the time left told with it is the lines left, not the way down again.
    Unfixed, it was 4.7 s where 2.2 s were left."""
    events, _, _ = _scan(tmp_path, size_um=(100, 100), step_um=50)
    end = events[-1].time
    first = next(e for e in events if e.kind == "point")
    left = end - first.time
    assert abs(first.eta_s - left) <= 0.1 * left, (first.eta_s, left)


@pytest.mark.parametrize("raster", ["serpentine", "unidirectional"])
def test_a_coarse_step_scan_s_estimate_counts_the_moves_it_makes(tmp_path, raster) -> None:
    """500 µm steps along x (0.25 s each at 2 mm/s, as long as a point's settling): a
    line's first point is no x step from the last line's end, and a unidirectional raster's
    way back across the line is made as it steps along y. Unfixed, the estimate counted an
    x step to every point and added the y step to the way back: +8 % serpentine, +16 %
    unidirectional on 5 × 3."""
    _, estimate, taken = _scan(tmp_path, size_um=(2000, 100), step_um=(500, 50), raster=raster)
    assert abs(estimate - taken) <= 0.02 * taken, (estimate, taken)


def test_a_flown_estimate_says_where_the_lock_in_s_storing_on_is_not_counted(
        monkeypatch, capsys, tmp_path) -> None:
    """A lock-in driver that does not say how long it stores on after a line's stop (a
    plug-in's written without `run_on_s`; here the SR830's as it was before it said so) is
    counted 0 s a line, and `scan` and `run` say, beside the estimate, that it is not counted.
    Unfixed, nothing was said: a run-on like an SR860's (0.26 s of each 0.86 s line) went
    uncounted unseen."""
    from drivers.sr830 import SR830
    from smm_daq.acquisition.duration import run_on_unsaid
    from smm_daq.acquisition.fly.settings import FlySettings
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.cli.main import main
    from smm_daq.errors import InputError
    from smm_daq.instruments import rig
    from smm_daq.instruments.profile import load_profile

    profile = load_profile()
    flown = ScanPlan.from_center("f", (12.5e-3, 12.5e-3), (100e-6, 20e-6), 10e-6,
                                 fly=FlySettings(pixel_time=0.05))
    assert run_on_unsaid(flown, profile) == ""  # the SR830 says it stops at once
    monkeypatch.delattr(SR830, "run_on_s")
    said = ("the lock-in's storing on after each line is not counted: its driver "
            "drivers.sr830.SR830 does not say how long it stores on after a line's stop "
            "(BufferedLockIn.run_on_s)")
    assert run_on_unsaid(flown, profile) == said
    stepped = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (100e-6, 20e-6), 10e-6)
    assert run_on_unsaid(stepped, profile) == ""  # a step scan stores nothing on

    def not_here(*_a, **_kw):
        raise InputError("not connected in this test")

    monkeypatch.setattr(rig, "open_rig", not_here)  # said before anything connects
    main(["scan", "--center-um", "12500,12500", "--size-um", "100,20", "--step-um", "10",
          "--fly", "--pixel-time-s", "0.05", "--name", "f", "--out", str(tmp_path / "s.h5")])
    assert f"of instrument time ({said})\n" in capsys.readouterr().err
    recipe = tmp_path / "r.toml"  # and `run`, for a recipe that flies a scan
    recipe.write_text('[[step]]\nkind = "scan"\nname = "f"\ncenter_um = [12500, 12500]\n'
                      'size_um = [100, 20]\nstep_um = 10\nfly = true\npixel_time_s = 0.05\n')
    main(["run", str(recipe), "--out", str(tmp_path / "r.h5"), "--yes"])
    assert f"(scans, waits and field ramps; {said})\n" in capsys.readouterr().err


def test_a_recipe_s_field_ramps_are_estimated_from_the_safe_state_off(tmp_path) -> None:
    """With the safe state "off" (every current at 0 A, the ambient field left: 20 µT here),
    a recipe begins there and its zero_field step ends there: 40 µT set is 0.4 s up and 0.4
    s down. Unfixed, both were estimated from zero applied field: 1.6 s for 0.85 s taken."""
    from smm_daq.acquisition.recipe import check_recipe, parse_recipe, run_recipe

    text = DEFAULT_PROFILE.read_text().replace(
        "ambient_field_uT = [0.0, 0.0, 0.0]", "ambient_field_uT = [0.0, 20.0, 0.0]").replace(
        'safe_state = "zero"', 'safe_state = "off"')
    recipe = parse_recipe('[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n\n'
                          '[[step]]\nkind = "zero_field"\n', "r.toml")
    session = Session.open(str(tmp_path / "s.h5"), parse_profile(text, DEFAULT_PROFILE),
                           time_scale=0)
    try:
        estimate = check_recipe(recipe, session.profile, session.path,
                                can_prompt=False).duration_s
        start = session.rig.clock.now()
        run_recipe(recipe, session, yes=True)
        taken = session.rig.clock.now() - start
    finally:
        session.close()
    assert abs(estimate - taken) <= 0.1, (estimate, taken)
