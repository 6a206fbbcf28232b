"""What a long scan keeps in memory does not grow with its points (an 8-hour scan has
millions of them)."""

from __future__ import annotations

from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import SUBSCRIBER_ERRORS_KEPT, Sequencer


def test_a_subscriber_failing_at_every_event_is_counted_not_kept_for_each(tmp_path):
    """A display that raises at every event must not break the scan, nor keep an exception,
    with the frames of its traceback, for every point of it."""
    plan = ScanPlan.from_center("broken", (12.5e-3, 12.5e-3), (90e-6, 40e-6), 10e-6)
    seq = Sequencer(fake_rig(), tmp_path / "s.h5", plan)
    seen = []

    def broken(event) -> None:
        seen.append(event.kind)
        raise RuntimeError(f"display gone at {event.kind}")

    seq.subscribe(broken)
    assert seq.run() == "finished"
    assert len(seen) == plan.points + plan.ny + 2  # points, lines, started, finished
    assert seq.subscriber_error_count == len(seen)
    assert len(seq.subscriber_errors) == SUBSCRIBER_ERRORS_KEPT < len(seen)
    assert str(seq.subscriber_errors[0]) == "display gone at started"  # the first, kept
