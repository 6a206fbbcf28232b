"""At connect the rig checks the profile's safety limits against the instruments themselves:
the supplies' rating (from the model in *IDN?) and the stage's travel (TMN?/TMX?)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from drivers.kepco_bop import KepcoBOPCoils
from smm_daq.cli.main import main
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile, parse_profile
from smm_daq.instruments.rig import open_rig, simulator_class

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "simulator.toml"


def edited(tmp_path: Path, *changes: tuple[str, str], source: Path = PROFILE) -> Path:
    text = source.read_text(encoding="utf-8")
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "profile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_max_current_beyond_the_supplies_rating_is_refused(tmp_path: Path, capsys) -> None:
    path = edited(tmp_path, ('stage_controller = "C-884"',
                             'stage_controller = "C-884"\nsupply_model = "BOP 20-2M"'))  # fmt: skip
    with pytest.raises(InputError) as err:
        open_rig(load_profile(path))
    message = str(err.value)
    assert str(path) in message
    assert "'coils.max_current_A' is 3 A" in message and "BOP 20-2M" in message
    assert "rated ±2 A" in message
    assert main(["check", "--profile", str(path)]) == 2
    assert "coils.max_current_A" in capsys.readouterr().err


def test_a_supply_rated_above_the_profiles_supply_rating_is_refused() -> None:
    """`coils.supply_rating_A` bounds how long `smm-daq safe` may take (a supply found in
    voltage mode is ramped down from up to its rating): a real supply rated higher than the
    profile says is refused at connect, as the simulator refuses such a supply_model."""
    profile = load_profile(PROFILE)  # its supplies: BOP 20-5M, rated 5 A
    clock = VirtualClock()
    backend = simulator_class(profile)(profile, clock, None)
    understated = replace(profile.coils, supply_rating=3.0)
    with pytest.raises(InputError) as err:
        KepcoBOPCoils.from_profile(understated, clock=clock,
                                   open_transport=backend.open_transport)
    message = str(err.value)
    assert "'coils.supply_rating_A' is 3 A" in message and "BOP 20-5M" in message
    assert "rated ±5 A" in message and "at least 5" in message


def test_a_stage_travel_beyond_the_controllers_is_refused(tmp_path: Path) -> None:
    path = edited(tmp_path, ('stage_controller = "C-884"',
                             'stage_controller = "C-884"\n'
                             'stage_travel_um = [[0.0, 25000.0], [0.0, 20000.0], [0.0, 10000.0]]'))
    with pytest.raises(InputError) as err:
        open_rig(load_profile(path))
    message = str(err.value)
    assert "'stage.travel_um'" in message
    assert "y [0.0, 25000.0] µm" in message and "[0.0, 20000.0] µm (TMN?/TMX?)" in message


def test_within_the_instruments_limits_the_simulated_rigs_open(tmp_path: Path) -> None:
    for profile in ("simulator.toml", "simulator-e727.toml"):
        with open_rig(load_profile(REPO / "configs" / profile)) as rig:
            assert rig.coils.limits()["max_current_A"] == 3.0
            assert rig.stage.snapshot()["units"] == (
                ["mm"] * 3 if profile == "simulator.toml" else ["\u00b5m"] * 3
            )


def test_an_emulated_E727_with_motor_stage_travel_is_refused() -> None:
    text = PROFILE.read_text(encoding="utf-8").replace(
        'stage_controller = "C-884"', 'stage_controller = "E-727"'
    )
    profile = parse_profile(text, Path("/lab/sim.toml"))
    with pytest.raises(InputError, match=r"stage\.travel_um.*E-727 drives stages of at most 2000"):
        open_rig(profile)


def test_check_of_a_stage_travel_beyond_the_controllers_is_worded_for_check(
        tmp_path: Path, capsys) -> None:
    """`check` moves nothing and sets no field: the stage it could not connect is not left
    unsafe by it, so it does not end with 'the rig may NOT be safe' (a scan's connect does);
    it says what it did not check and what to run if an earlier program left the rig so."""
    path = edited(tmp_path, ('stage_controller = "C-884"',
                             'stage_controller = "C-884"\n'
                             'stage_travel_um = [[0.0, 25000.0], [0.0, 20000.0], [0.0, 10000.0]]'))
    assert main(["check", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'stage.travel_um'" in err
    assert "may NOT be safe" not in err, err
    assert "nothing was moved or energised by this command" in err, err
    assert f"smm-daq safe --profile {path}" in err
    with pytest.raises(InputError) as raised:  # a scan's connect keeps the safety statement
        open_rig(load_profile(path))
    assert any("the rig may NOT be safe" in note for note in raised.value.__notes__)
