"""`Rig.make_safe` (a scan's end or abort, a window's Stop during a ramp) gives the stage
its share of the path's deadline (`safe_bound.stage_share_s`), as `smm-daq safe` does: a
stage slow to answer, which loses no reply and so is never given up, leaves the coils the
time of their ramps. On the virtual clock; nothing sleeps."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from simulators.emulator import Emulator
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.instruments.safe_bound import safe_time_bound, stage_share_s

TIMEOUT_S = 30.0  # the stage's link timeout
SUPPLY_TIMEOUT_S = 4.0  # the supplies' (the deadline's room for their lost replies)
FIELD = np.array([0.0, 0.0, 100e-6])  # T: about 2 A in coil z


class SlowAndMovingOn(Emulator):
    """The stage's controller answering every message `seconds` after it was sent (on the
    rig's clock), never late enough to be taken for lost, and saying an axis still moves
    (`#5`) after every stop."""

    def __init__(self, inner: Emulator, clock: Any, seconds: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.seconds = seconds
        self.immediate_bytes = inner.immediate_bytes
        self.sent: list[str] = []

    def handle_byte(self, code: int) -> str | None:
        self.clock.sleep(self.seconds)
        self.sent.append(chr(code))
        reply = self.inner.handle_byte(code)
        return "1" if code == 5 else reply

    def device_clear(self) -> None:
        self.inner.device_clear()

    def handle(self, message: str) -> str | None:
        self.clock.sleep(self.seconds)
        self.sent.append(message)
        return self.inner.handle(message)


def test_a_stage_slow_to_answer_leaves_the_coils_the_time_of_their_ramps() -> None:
    """The field is on (2 A in coil z); then the stage answers every message just within its
    30 s timeout and says an axis moves on after each stop, so its stop (three stops, each
    checked, the decelerations and velocities asked, the braking waits) takes over six
    minutes, more than the deadline leaves beside the coils' ramps: its lost replies and
    braking are what the deadline counts for the stage, and it loses none. `Rig.make_safe`
    cuts it where the stage's share ends: the coils are ramped down to 0 A, outputs on, not
    switched off where they stand, within the bound. Unfixed, the stage's stop outlasted the
    deadline, and each supply was switched off at its current."""
    profile = load_profile()
    profile = replace(
        profile,
        stage=replace(profile.stage, link=replace(profile.stage.link, timeout_s=TIMEOUT_S)),
        coils=replace(profile.coils, link=replace(profile.coils.link,
                                                  timeout_s=SUPPLY_TIMEOUT_S)))
    rig = open_rig(profile)
    try:
        rig.coils.set_field(FIELD)
        world = rig.world.coils
        assert max(abs(world.current(k)) for k in range(3)) > 1.0
        transport = rig.stage.link.transport  # type: ignore[attr-defined]
        stage = transport.emulator = SlowAndMovingOn(transport.emulator, rig.clock,
                                                     0.99 * TIMEOUT_S)
        began = rig.clock.now()
        problems = rig.make_safe()
        took = rig.clock.now() - began
        print(f"made safe in {took:.0f} s (stage's share {stage_share_s(profile):.0f} s, bound "
              f"{safe_time_bound(profile):.0f} s): {problems}; the stage was sent {stage.sent}")
        assert len(problems) == 1 and "the stage's share of making the rig safe" in problems[0]
        # its stop, sent first but for the ERR? written just ahead of it (its reply read
        # after the stop), which the controller parses after the #24 it acts on as it comes;
        # then the stop's own check
        assert stage.sent[:3] == ["\x18", "ERR?", "ERR?"], stage.sent
        assert all(abs(world.current(k)) < 1e-3 and world.output(k) for k in range(3))
        assert took <= safe_time_bound(profile)
    finally:
        rig.close()
