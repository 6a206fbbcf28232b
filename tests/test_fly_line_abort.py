"""An abort while a fly line moves is noticed within `STOP_SLICE_S` of the rig's clock, as
during a step scan's move: the wait for the line's end asks it that often, and the rig is
made safe from there (the stage stopped, the field ramped down)."""

from __future__ import annotations

import numpy as np

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments import interfaces
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

CENTRE = (12.5e-3, 12.5e-3)
INTO_LINE_S = 0.05  # when the abort comes, counted from the second line's motion start


def test_an_abort_during_a_fly_lines_motion_is_noticed_within_a_slice(tmp_path, monkeypatch):
    """The second line (21 pixels of 50 ms: about 1 s) is aborted 50 ms into its motion: the
    next message to the stage, the first after the abort, is sent within `STOP_SLICE_S` of it.
    Unfixed, the wait for the line's end asked every 0.25 s: 200 ms after it."""
    plan = ScanPlan.from_center(
        "fly",
        CENTRE,
        (0.4e-3, 0.1e-3),
        20e-6,
        field=(0, 0, 20e-6),
        fly=FlySettings(pixel_time=0.05),
    )
    rig = open_rig(load_profile())
    clock = rig.clock
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    sent: list[float] = []  # when each message went to the stage, on the rig's clock
    transport = rig.stage.link.transport
    write, sleep, fly_x = transport.write, clock.sleep, rig.stage.fly_x
    motions: list[float] = []
    aborted: list[float] = []

    def logged(message: str) -> None:
        sent.append(clock.now())
        write(message)

    def flying(*args, **kwargs) -> float:
        motions.append(fly_x(*args, **kwargs))
        return motions[-1]

    def sleeping(seconds: float) -> None:
        now = clock.now()
        at = motions[1] + INTO_LINE_S if len(motions) == 2 else None
        if at is None or aborted or not now < at <= now + seconds:
            sleep(seconds)
            return
        sleep(at - now)  # the abort comes while this sleep is under way
        aborted.append(clock.now())
        seq.abort("test abort")
        sleep(now + seconds - clock.now())

    monkeypatch.setattr(transport, "write", logged)
    monkeypatch.setattr(rig.stage, "fly_x", flying)
    monkeypatch.setattr(clock, "sleep", sleeping)
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    assert len(aborted) == 1, (motions, aborted)
    noticed = next(t for t in sent if t >= aborted[0]) - aborted[0]
    assert noticed <= interfaces.STOP_SLICE_S + 1e-9, noticed
    assert not any(rig.world.stage.moving(a) for a in rig.world.stage.axis_names)
    np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
