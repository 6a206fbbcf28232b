"""The bound `smm-daq safe` prints ("at most N s", what a supervisor allows between SIGTERM
and SIGKILL) covers the longest the emulated rig can make it take: every supply found in
voltage mode with its output on, driving as much current as it can, is ramped down at connect
within the ramp rate, one after another, before the ramp to the safe state."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from served_rig import simulators_made

from smm_daq.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SLEWED_S = 10.0  # virtual s for the emulated supplies' currents to reach 20 A (10 A/s)


def _profile(tmp_path: Path) -> Path:
    """The simulator with supplies rated 20 A (beyond max_current_A) and a slow ramp."""
    text = (REPO / "configs" / "simulator.toml").read_text(encoding="utf-8")
    for old, new in (('stage_controller = "C-884"',
                      'stage_controller = "C-884"\nsupply_model = "BOP 100-20M"'),
                     ("supply_rating_A = 5.0", "supply_rating_A = 20.0"),
                     ("max_ramp_A_per_s = 1.0", "max_ramp_A_per_s = 0.2")):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "profile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_printed_bound_covers_voltage_mode_ramps_at_the_supplies_rating(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def left_in_voltage_mode(backend: Any, profile: Any) -> None:
        for address in profile.coils.addresses:
            supply = backend.endpoint(address)
            for command in ("FUNC:MODE VOLT", "CURR 20", "VOLT 100", "OUTP ON"):
                supply.handle(command)  # as much as it can drive: its rating
        backend.clock.sleep(SLEWED_S)  # the currents reach it

    made = simulators_made(monkeypatch, left_in_voltage_mode)
    code = main(["safe", "--profile", str(_profile(tmp_path))])
    said = capsys.readouterr()
    assert code == 0, said
    printed = re.search(r"at most (\d+) s", said.err)
    assert printed is not None
    backend = made[0]
    currents = [abs(backend.world.coils.current(k)) for k in range(3)]
    simulated_s = backend.clock.now() - SLEWED_S  # `safe` on the simulator's virtual clock
    assert simulated_s > 3 * 19.0 / 0.2, said  # each supply ramped from about 20 A, in turn
    assert simulated_s <= int(printed.group(1))
    assert max(currents) < 1e-3
