"""A lock-in's capture caught up on (samples further apart than its time constant, a served
world left without a command for a while) asks the world once for all of them, and stores
what sample-by-sample integration stores: sample by sample it cost a millisecond each, and
served faster than real time the lock-in held every instrument's replies for seconds."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from simulators import tcp_server
from simulators.backend import SimulatedBackend
from simulators.tcp_server import HOST
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import parse_profile

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


def _served_sr860() -> tuple[SimulatedBackend, VirtualClock]:
    text = PROFILE.read_text().replace('implementation = "sr830"', 'implementation = "sr860"')
    profile = parse_profile(re.sub(r"reserve = .*\n", "", text), PROFILE)
    clock = VirtualClock()
    return SimulatedBackend(profile, clock), clock


def _capture_while_moving(backend: SimulatedBackend, clock: VirtualClock, oflt: int) -> None:
    """A capture at 305 Hz (1.25 MHz / 2^12: the ceiling the time constant allows over the
    power of two that gives it) begun, the stage set moving."""
    p = backend.profile
    lockin = backend.endpoint(p.lockin.link.address)
    lockin.handle(f"OFLT {oflt}")
    ceiling = float(lockin.handle("CAPTURERATEMAX?"))
    rate_index = round(np.log2(ceiling / (1.25e6 / 2**12)))
    for command in ("CAPTURECFG XY", f"CAPTURERATE {rate_index}", "CAPTURESTART ONE, IMM"):
        lockin.handle(command)
    clock.sleep(0.01)
    backend.endpoint(p.stage.link.address).handle("MOV 1 10.5")


@pytest.mark.parametrize("oflt", [2, 4, 6])  # 10 µs, 100 µs, 1 ms: 20 τ past and within 3.3 ms
def test_a_capture_caught_up_on_asks_the_world_once_and_stores_the_same_samples(
        oflt: int) -> None:
    stored = []
    asked = []
    for sample_by_sample in (True, False):
        backend, clock = _served_sr860()
        lockin = backend.lockin
        if sample_by_sample:  # as `_integrate_to` then `_store_sample` at each sample
            def each(times, _spacing, lockin=lockin):
                for t in times:
                    lockin._integrate_to(t)
                    lockin._store_sample(t)
            lockin._sample_sparsely = each
        _capture_while_moving(backend, clock, oflt)
        calls: list[int] = []

        def counted(t, e, calls=calls, signal=backend.world.lockin_signal):
            calls.append(len(t))
            return signal(t, e)
        backend.world.lockin_signal = counted
        clock.sleep(1.0)  # then a supply's query catches the lock-in up
        backend.endpoint(backend.profile.coils.addresses[0]).handle("OUTP?")
        stored.append(lockin._capture[: lockin._write].copy())
        asked.append(calls)
    assert stored[0].size == stored[1].size >= 2 * 30  # X and Y of each sample
    np.testing.assert_allclose(stored[1], stored[0], rtol=1e-6, atol=1e-6 * np.abs(stored[0]).max())
    # about once a sample, sample by sample (a sample within a few τ of the one before it
    # may be integrated to with it)
    assert len(asked[0]) >= 0.9 * stored[0].size // 2
    assert len(asked[1]) <= 5  # the first sample and the present (twice each), the rest at once


def test_a_served_world_keeps_itself_up_to_the_present_between_commands() -> None:
    """Every instrument's command waited for the lock-in to catch up on all the simulated
    time since the last command (seconds of a capture's samples after a quiet while), under
    the world's one lock. Served to a client, the world brings itself up to the present on
    its own thread, so a command waits for no more than a moment's catching up."""
    backend, clock = _served_sr860()
    clock.sleep(2.0)  # simulated time passes, a client connected but quiet
    present = clock.now()
    reached = threading.Event()
    backend.world.add_listener(lambda t: reached.set() if t >= present else None)
    server = backend.serve_tcp()
    try:
        port = next(iter(server.ports().values()))
        with socket.create_connection((HOST, port)):
            assert reached.wait(timeout=30), "the served world was not brought up to the present"
    finally:
        server.close()


def test_a_served_world_is_kept_up_only_while_a_client_is_connected(monkeypatch) -> None:
    """With no client, the keep-up thread kept a capture left running going on its own, a
    tenth to nearly half a core for no one: it waits for a client now (the first command
    catches the world up, as before the thread). Its pause made nil here, it calls the world
    at once and again, so one call before the client connected would be recorded first."""
    monkeypatch.setattr(tcp_server, "KEEP_UP_S", 0.0)
    seen: list[int] = []  # clients connected at each keep-up
    called = threading.Event()
    box: list[tcp_server.EmulatorServer] = []

    def keep_up() -> None:
        if box:
            seen.append(box[0].clients())
            called.set()

    backend, _ = _served_sr860()
    server = tcp_server.EmulatorServer(dict(backend._endpoints), keep_up=keep_up)
    box.append(server)
    server.start()
    try:
        port = next(iter(server.ports().values()))
        with socket.create_connection((HOST, port)):
            assert called.wait(timeout=30), "the world was not kept up with a client connected"
            first = seen[0]
    finally:
        server.close()
    assert first >= 1, seen[:5]
