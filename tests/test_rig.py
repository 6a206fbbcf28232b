"""The rig factory: entry-point lookup, the simulated backend's [simulation] table, make_safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.sample import VirtualSample
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, InstrumentError, InstrumentLost
from smm_daq.instruments.interfaces import FieldSource, LockIn, Magnetometer, Stage
from smm_daq.instruments.profile import load_profile, parse_profile
from smm_daq.instruments.rig import open_rig

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


def edited(old: str, new: str) -> str:
    text = PROFILE.read_text()
    assert old in text
    return text.replace(old, new)


def profile_with(old: str, new: str):
    return parse_profile(edited(old, new), Path("/lab/sim.toml"))


def test_simulator_profile_opens_every_instrument_through_its_emulator() -> None:
    rig = open_rig(load_profile())
    assert isinstance(rig.lockin, LockIn) and isinstance(rig.stage, Stage)
    assert isinstance(rig.coils, FieldSource) and isinstance(rig.fluxgate, Magnetometer)
    assert isinstance(rig.clock, VirtualClock) and rig.world is not None
    assert rig.lockin.identify().model == "SR830"
    assert rig.lockin.time_constant() == pytest.approx(0.03)
    assert set(rig.snapshot()) == {"lockin", "stage", "coils", "fluxgate"}
    rig.close()
    with pytest.raises(InstrumentLost):
        rig.lockin.read_xy()


def test_sr860_profile_gets_the_sr860_emulator() -> None:
    rig = open_rig(profile_with('implementation = "sr830"', 'implementation = "sr860"'))
    assert rig.lockin.identify().model == "SR860"
    assert rig.lockin.sensitivity() == pytest.approx(0.5)


def test_world_options_replace_the_sample_and_the_noise() -> None:
    rig = open_rig(
        load_profile(),
        world_options={
            "sample": VirtualSample.empty(),
            "noise_rms": 0.0,
            "drift_rate": 0.0,
            "ambient_field": np.array([0.0, 0.0, 2e-6]),
        },
    )
    rig.clock.sleep(1.0)
    x, _ = rig.lockin.read_xy()
    assert x == pytest.approx(2000.0 * 2e-6, rel=1e-9)  # only the ambient z field


def test_unknown_world_option_is_named() -> None:
    with pytest.raises(InputError, match="'noise'"):
        open_rig(load_profile(), world_options={"noise": 0.0})


def test_unknown_implementation_names_the_key_and_the_known_ones() -> None:
    with pytest.raises(InputError) as err:
        open_rig(profile_with('implementation = "sr830"', 'implementation = "sr999"'))
    message = str(err.value)
    assert "/lab/sim.toml" in message and "lockin.implementation" in message
    # the lock-in drivers alone: a stage's would be refused as no LockIn
    assert "'sr830'" in message and "'sr860'" in message and "'pi_gcs'" not in message


def test_an_implementation_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(InputError, match=r"lockin\.implementation.*not a LockIn"):
        open_rig(profile_with('implementation = "sr830"', 'implementation = "pi_gcs"'))


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("noise_uT_rms = 0.25", "noise_uT_rms = -1.0", "simulation.noise_uT_rms"),
        ('sample = "builtin"', 'sample = "granite"', "simulation.sample"),
        ("seed = 20261122", "seed = 1.5", "simulation.seed"),
        ("seed = 20261122", "seed = 1\nnoise_seed = -1", "simulation.noise_seed"),
        ("ambient_field_uT = [0.004, -0.003, 0.005]", "ambient_field_uT = [1, 2]",
         "simulation.ambient_field_uT"),
        ("disconnected = []", 'disconnected = ["GPIB0::99::INSTR"]', "simulation.disconnected"),
        ("seed = 20261122", "seed = 1\nwind_speed = 3", "simulation.wind_speed"),
    ],
)  # fmt: skip
def test_bad_simulation_settings_name_the_key(old: str, new: str, key: str) -> None:
    with pytest.raises(InputError) as err:
        open_rig(profile_with(old, new))
    assert key in str(err.value) and "/lab/sim.toml" in str(err.value)


def test_a_shared_address_is_refused() -> None:
    """Naming both keys and what was expected (it named the address alone, and no expected
    value)."""
    with pytest.raises(InputError) as err:
        open_rig(profile_with('address = "GPIB0::22::INSTR"', 'address = "GPIB0::8::INSTR"'))
    assert str(err.value).endswith(
        "key 'fluxgate.address' is 'GPIB0::8::INSTR', the address of 'lockin.address' too: it "
        "is given to more than one instrument; expected each instrument at an address of its "
        "own"), str(err.value)


def test_an_instrument_that_does_not_answer_is_named() -> None:
    profile = profile_with("disconnected = []", 'disconnected = ["GPIB0::2::INSTR"]')
    with pytest.raises(InstrumentError) as err:
        open_rig(profile)
    assert err.value.instrument == "coils"
    assert ("coils (kepco_bop at GPIB0::1::INSTR, GPIB0::2::INSTR, GPIB0::3::INSTR) does not "
            "answer: coil y: kepco_bop[y] at GPIB0::2::INSTR") in str(err.value)


def test_make_safe_ramps_the_field_down_and_stops_the_stage() -> None:
    rig = open_rig(load_profile())
    rig.coils.set_field(np.array([20e-6, 0.0, 60e-6]))
    coils = rig.world.coils
    assert abs(coils.field_at_sample()[2] - 60e-6) < 0.1e-6
    assert rig.make_safe() == []
    rig.clock.sleep(1.0)
    np.testing.assert_allclose(coils.currents(), 0.0, atol=1e-4)  # nominal ambient is zero
    assert rig.stage.on_target()


def test_make_safe_off_switches_the_supplies_off() -> None:
    rig = open_rig(profile_with('safe_state = "zero"', 'safe_state = "off"'))
    rig.coils.set_field(np.array([0.0, 0.0, 50e-6]))
    assert rig.make_safe() == []
    assert not any(rig.world.coils.output(i) for i in range(3))


def test_make_safe_tries_every_step_and_reports_what_failed() -> None:
    rig = open_rig(load_profile())
    rig.coils.set_field(np.array([0.0, 0.0, 50e-6]))
    rig.backend.faults[rig.profile.stage.link.address].disconnected = True
    problems = rig.make_safe()
    assert len(problems) == 1 and problems[0].startswith("stage not stopped")
    rig.clock.sleep(1.0)
    np.testing.assert_allclose(rig.world.coils.currents(), 0.0, atol=1e-4)
    snapshot = rig.snapshot()
    assert "error" in snapshot["stage"] and "error" not in snapshot["lockin"]
