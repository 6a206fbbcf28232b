"""The profile's `[fly] trigger_wired`: the E-727's trigger output line 1 reaches the
lock-in's TRIG IN in the simulated world, at the time of the marked wave point."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.backend import SimulatedBackend
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError
from smm_daq.instruments.profile import parse_profile

E727 = Path("configs/simulator-e727.toml")
SERVO = 2e-5  # the E-727's servo cycle (s)


def _backend(wired: bool | None) -> tuple[SimulatedBackend, VirtualClock]:
    text = E727.read_text()
    if wired is not None:
        text += f"\n[fly]\ntrigger_wired = {str(wired).lower()}\n"
    profile = parse_profile(text, E727)
    clock = VirtualClock()
    backend = SimulatedBackend(profile, clock)
    return backend, clock


def _ask(backend, address, command):
    return backend.endpoint(address).handle(command)


@pytest.mark.parametrize("wired", [True, False, None])
def test_a_marked_wave_point_starts_the_buffer_only_through_the_cable(wired):
    backend, clock = _backend(wired)
    lockin, stage = backend.addresses()["lockin"], backend.addresses()["stage"]
    for command in ("SRAT 13", "SEND 0", "TSTR 1", "REST"):  # 512 Hz, armed by TRIG IN
        _ask(backend, lockin, command)
    for command in ("SVO 1 1 2 1 3 1", "WAV 1 X LIN 1000 100 100 1000 0 0", "WSL 1 1",
                    "WGC 1 1", "WTR 1 50 0", "CTO 1 2 1", "CTO 1 3 4", "TWS 1 401 1"):
        _ask(backend, stage, command)
    clock.advance(0.1)
    _ask(backend, stage, "WGO 1 1")
    started = clock.now()
    edge = started + 400 * 50 * SERVO  # point 401, one point per 50 servo cycles: 0.4 s
    clock.advance(1.0)
    points = int(_ask(backend, lockin, "SPTS?"))
    if wired:  # the first sample one period after the edge
        assert points == int((clock.now() - edge) * 512 + 1e-9)
    else:
        assert points == 0


def test_a_bad_trigger_wired_value_is_named():
    with pytest.raises(InputError, match="trigger_wired"):
        parse_profile(E727.read_text() + '\n[fly]\ntrigger_wired = "yes"\n', E727)
    with pytest.raises(InputError, match="cable"):
        parse_profile(E727.read_text() + "\n[fly]\ncable = true\n", E727)
