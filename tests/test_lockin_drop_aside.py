"""The rest of a lock-in buffer piece cut short on a serial line (an abort amid an SR830's
`TRCA?` at 9600 baud; an SR860's 64 kB block takes over a minute there) is dropped aside, on
a thread of its own, as a cut stage reply is: the window's poll that meets it first
(`read_xy`, on the rig's one thread) is refused at once, so a Stop queued behind it stops the
stage at once, and closing the lock-in's link waits for no drain (`safe_bound.close_wait_s`
counts none). The drain is held by an event; the line runs on the rig's virtual clock."""

from __future__ import annotations

import threading

import pytest
from test_buffer_piece_abort import HANG_GUARD_S, READ_BEFORE_ABORT, _on_a_serial_line
from test_stop_amid_drop import _on_the_rigs_thread

from smm_daq.errors import ReadStopped, StillDropping
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig


def _piece_cut_and_drain_held(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An SR830 buffer read on a 9600-baud line stopped amid its first piece (its rest still
    coming); the drain of that rest (the transport's `clear`) held until the event returned
    is set."""
    lockin = rig.lockin
    lockin.configure_buffer(64.0)  # type: ignore[attr-defined]
    lockin.start_buffer(on_trigger=False)  # type: ignore[attr-defined]
    rig.clock.sleep(20.0)
    stopped: list[bool] = []
    port = _on_a_serial_line(rig, monkeypatch)
    port.watch("TRCA?", READ_BEFORE_ABORT, lambda: stopped.append(True))
    with pytest.raises(ReadStopped):
        lockin.read_buffer(stop=lambda: bool(stopped))  # type: ignore[attr-defined]
    assert port.incoming  # the rest of the piece still comes
    transport = lockin.link.transport  # type: ignore[attr-defined]
    release, clear = threading.Event(), transport.clear

    def held() -> None:
        assert release.wait(HANG_GUARD_S), "the drain was never released"
        clear()

    monkeypatch.setattr(transport, "clear", held)
    return release


def test_a_stop_behind_the_poll_that_meets_a_cut_piece_goes_at_once(monkeypatch) -> None:
    """A Go to under way; the window's poll asks the lock-in's X, Y first, then a Stop comes:
    the poll is refused at once (the rest dropped aside) and the stage stops while the drain
    still goes on; the lock-in's next reading, once the drop has ended, reads its own reply.
    Unfixed, `read_xy` drained the line itself (up to 4 timeouts and the largest reply's
    transfer, over a minute at 9600 baud) and the Stop waited behind it, the stage moving."""
    rig = open_rig(load_profile())
    release = threading.Event()
    try:
        release = _piece_cut_and_drain_held(rig, monkeypatch)
        stage, model = rig.stage, rig.world.stage
        x, y, _ = stage.position()
        stage.move_to(x + 10e-3 if x < 12.5e-3 else x - 10e-3, y, wait=False)
        assert any(model.moving(a) for a in model.axis_names)
        thread, done = _on_the_rigs_thread([rig.lockin.read_xy, stage.stop])
        thread.join(HANG_GUARD_S / 3)
        assert not release.is_set()
        assert not thread.is_alive(), "the Stop waited behind the drain"
        assert isinstance(done[0], StillDropping), done
        assert done[1] is None, done  # stopped, checked
        assert not any(model.moving(a) for a in model.axis_names)
        release.set()
        assert done[0].wait(HANG_GUARD_S)
        x_v, _ = rig.lockin.read_xy()
        assert isinstance(x_v, float)
    finally:
        release.set()
        rig.close()


def test_closing_the_lockin_waits_for_no_drain(monkeypatch) -> None:
    """The window's poll met the rest of a cut piece; the window closes while it is drained:
    the lock-in's link closes at once, not after the drain (which `close_wait_s` does not
    count). Unfixed, the poll's exchange drained under the link's lock, and the close waited
    for it."""
    rig = open_rig(load_profile())
    release = threading.Event()
    try:
        release = _piece_cut_and_drain_held(rig, monkeypatch)
        thread, done = _on_the_rigs_thread([rig.lockin.read_xy])
        closing = threading.Thread(target=rig.lockin.close, name="closer", daemon=True)
        thread.join(HANG_GUARD_S / 3)
        closing.start()
        closing.join(HANG_GUARD_S / 3)
        assert not release.is_set()
        assert not closing.is_alive(), "the close waited for the drain"
        assert isinstance(done[0], StillDropping), done
    finally:
        release.set()
        rig.close()
