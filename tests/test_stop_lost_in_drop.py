"""A Stop sent amid the drop of a stage reply cut short (the drop on a thread of its own:
`GCSLink._drop_rest`) may be dropped with it: a serial line's output flushed as the drain
begins, a socket's connection replaced. Its checks, which wait for the drop, send it once
more first, so that a controller that cannot say what moves (no `#5`, no `WGO?`) is not
left moving behind a Stop said done. The drain is held by events: nothing sleeps."""

from __future__ import annotations

import pytest
from test_stop_amid_drop import (
    HANG_GUARD_S,
    LinePerRead,
    cut_stage_reply,
    make_safe_past_the_stages_share,
    stop_amid_held_drop,
)

from drivers.pi_gcs import STOP_ALL
from smm_daq.errors import StillDropping
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig


class LosingAmid(LinePerRead):
    """`LinePerRead` whose drain drops what is written while it goes on, as a flush of the
    line's output at its start would."""

    def write(self, message: str) -> None:
        amid = self.draining.is_set() and not self.release.is_set()
        if not amid:
            super().write(message)
            return
        self.sent.append((message, True))
        if message == STOP_ALL:
            self.stop_sent.set()


def test_a_stop_dropped_with_the_rest_of_a_cut_reply_is_sent_again_after_the_drop() -> None:
    """The stage moves (a Go to 10 mm long); its `HPA?` is cut at a making safe's deadline;
    the window's poll meets the rest (dropped aside, refused), then its Stop sends the stop
    byte amid the drop, which loses it. Once the drop has ended, the stop is sent again
    before its check: the stage stops. Unfixed, the controller never got a stop, `ERR?`
    answered 0, and with no `#5` to ask, the Stop returned as done, the stage moving on."""
    rig = open_rig(load_profile())
    try:
        stage, model = rig.stage, rig.world.stage
        stage._commands -= {"#5", "WGO?"}  # type: ignore[attr-defined]
        x, y, _ = stage.position()
        stage.move_to(x + 10e-3 if x < 12.5e-3 else x - 10e-3, y, wait=False)
        line = cut_stage_reply(rig, LosingAmid)
        assert any(model.moving(a) for a in model.axis_names)
        done = stop_amid_held_drop(line, [stage.position, stage.stop])
        assert isinstance(done[0], StillDropping), done
        assert done[1] is None, done
        assert (STOP_ALL, False) in line.sent, line.sent  # sent again, once the drop ended
        rig.clock.advance(1.0)  # braked by then
        assert not any(model.moving(a) for a in model.axis_names)
    finally:
        rig.close()


def test_a_stop_lost_in_a_drop_make_safe_gave_up_on_is_sent_again_as_the_drop_ends() -> None:
    """The stage moves slowly (a Go to that takes hours); its `HPA?` is cut at a making
    safe's deadline and the window's poll meets the rest (dropped aside, refused). Then
    `Rig.make_safe`: its stop goes amid the drop, which loses it, and its checks give up at
    the end of the stage's share. Once the drop ends, with no exchange after it (the program
    may close), the stop is sent again: the stage stops. Unfixed, the stop was sent again
    only before the link's next exchange: none came, the stage moved on."""
    profile = load_profile()
    rig = open_rig(profile)
    try:
        stage, model = rig.stage, rig.world.stage
        stage._commands -= {"#5", "WGO?"}  # type: ignore[attr-defined]
        stage.set_velocity(1e-6)  # 1 µm/s: still on its way well past the stage's share
        x, y, _ = stage.position()
        stage.move_to(x + 10e-3 if x < 12.5e-3 else x - 10e-3, y, wait=False)
        line = cut_stage_reply(rig, LosingAmid)
        with pytest.raises(StillDropping) as polled:
            stage.position()
        with make_safe_past_the_stages_share(rig, line) as done:
            assert any(model.moving(a) for a in model.axis_names)  # the stop was lost
        [problems] = done
        assert len(problems) == 1 and "the stage's share" in problems[0], problems
        assert polled.value.wait(HANG_GUARD_S), "the drop never ended"
        assert (STOP_ALL, False) in line.sent, line.sent  # sent again as the drop ended
        rig.clock.advance(1.0)  # braked by then
        assert not any(model.moving(a) for a in model.axis_names)
    finally:
        rig.close()
