"""The emulators never answer "-0": a value sent as -0 (or a small negative their resolution
rounds away) reads back as zero, as the instruments print it (they keep no negative zero)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulators.backend import SimulatedBackend
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import Profile, load_profile, parse_profile

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


def _backend(lockin: str) -> tuple[SimulatedBackend, Profile]:
    text = PROFILE.read_text().replace('implementation = "sr830"',
                                       f'implementation = "{lockin}"')
    profile = (load_profile(PROFILE) if lockin == "sr830"
               else parse_profile(re.sub(r"reserve = .*\n", "", text), PROFILE))
    return SimulatedBackend(profile, VirtualClock()), profile


@pytest.mark.parametrize(("lockin", "setting", "query", "reply"), [
    ("sr830", "OEXP 1,-0,0", "OEXP? 1", "0.00,0"),
    ("sr830", "OEXP 1,-0.001,0", "OEXP? 1", "0.00,0"),
    ("sr830", "AUXV 1,-0", "AUXV? 1", "0.000"),
    ("sr830", "AUXV 1,-0.0004", "AUXV? 1", "0.000"),
    ("sr860", "COFP X, -0", "COFP? X", "0.00"),
    ("sr860", "AUXV 0, -0", "AUXV? 0", "0.000"),
    ("sr860", "SOFF -0", "SOFF?", "0"),
])
def test_a_lockin_setting_sent_as_minus_zero_reads_zero(
        lockin: str, setting: str, query: str, reply: str) -> None:
    backend, profile = _backend(lockin)
    emulator = backend.endpoint(profile.lockin.link.address)
    emulator.handle("*CLS")  # the power-on bit
    emulator.handle(setting)
    assert emulator.handle(query) == reply
    assert emulator.handle("*ESR?") == "0"  # taken, not refused


@pytest.mark.parametrize(("setting", "query"), [("VOLT -0", "VOLT?"), ("CURR -0", "CURR?")])
def test_a_supply_setting_sent_as_minus_zero_reads_zero(setting: str, query: str) -> None:
    backend, profile = _backend("sr830")
    supply = backend.endpoint(profile.coils.addresses[0])
    supply.handle(setting)
    assert supply.handle(query) == "0.000000E+00"
    assert supply.handle("SYST:ERR?").startswith("0,")


def test_a_trigger_line_setting_sent_as_minus_zero_reads_zero() -> None:
    profile = load_profile(PROFILE.with_name("simulator-e727.toml"))  # a wave generator's
    stage = SimulatedBackend(profile, VirtualClock()).endpoint(profile.stage.link.address)
    stage.handle("CTO 1 3 -0")
    assert stage.handle("CTO? 1 3") == "1 3=0"
    assert stage.handle("ERR?") == "0"
