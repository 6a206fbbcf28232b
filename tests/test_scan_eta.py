"""The time left that a scan's events give (`ScanEvent.eta_s`: the command line's ETA, the
window's "about ... left") is the scan's own pace from its first points on, not that of the
stage's way down to the scan height, which the run's first point includes."""

from __future__ import annotations

from smm_daq.acquisition.session import Session


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
    from smm_daq.acquisition.plan import ScanPlan

    monkeypatch.setattr(ScanPlan, "estimate_duration", lambda *_a, **_kw: 86400.0)
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
