"""A real rig's profile that gives two instruments one address (however spelled) is refused
before anything is opened: both would be driven through one instrument."""

from __future__ import annotations

from pathlib import Path

import pytest

from smm_daq.errors import InputError
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import parse_profile
from smm_daq.instruments.rig import open_rig

SIM_PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator-e727.toml"


def _real_profile(old: str, new: str):
    text = SIM_PROFILE.read_text().replace("simulated = true", "simulated = false")
    text = text[: text.index("[simulation]")]
    assert old in text
    return parse_profile(text.replace(old, new), Path("/lab/profiles/two-in-one.toml"))


@pytest.mark.parametrize(("old", "new", "key", "first"), [
    ('"GPIB0::2::INSTR"', '"gpib::1"', "coils.addresses[1]", "coils.addresses[0]"),
    ('address = "GPIB0::22::INSTR"', 'address = "GPIB0::3::INSTR"', "fluxgate.address",
     "coils.addresses[2]"),
])
def test_two_instruments_at_one_address_are_refused_before_anything_opens(
        monkeypatch, old, new, key, first) -> None:
    profile = _real_profile(old, new)

    def opened(*_args, **_kw):
        raise AssertionError("an instrument was opened")

    monkeypatch.setattr(rig_module, "_open_instrument", opened)
    with pytest.raises(InputError) as err:
        open_rig(profile)
    message = str(err.value)
    assert "/lab/profiles/two-in-one.toml" in message
    assert f"key '{key}'" in message and f"'{first}'" in message
