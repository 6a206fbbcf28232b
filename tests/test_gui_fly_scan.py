"""A fly scan started from the Scan tab records what `smm-daq scan --fly` records for it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from PyQt6 import QtCore

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.cli.main import main

WAIT_MS = 60_000  # generous: the whole suite shares two cores
FLY = ["--fly", "--pixel-time-s", "0.05", "--line-baselines"]


def stored(path: Path, entry: str) -> tuple[dict, dict, np.ndarray]:
    """The plan and the fly settings an entry records, and its map."""
    with h5py.File(path, "r") as f:
        return (json.loads(f[f"{entry}/plan"][()]),
                json.loads(f[f"{entry}/fly_streams/settings"][()]),
                f[f"{entry}/data/Bz"][()])


@pytest.fixture
def from_command_line(tmp_path: Path) -> Path:
    """A flown scan with line baselines, written by the command line before the window's rig
    is connected (one process drives a rig at a time)."""
    path = tmp_path / "cli.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "100,60", "--step-um",
                 "20", "--name", "f", "--out", str(path), *FLY]) == 0
    return path


def test_line_baselines_from_the_form_record_what_the_command_line_records(
        from_command_line, window, qtbot, tmp_path):
    cli_plan, cli_fly, cli_bz = stored(from_command_line, "f")
    plan = ScanPlan.from_text(json.dumps(cli_plan))
    assert plan.fly is not None and plan.fly.baselines
    form = window.scan.form
    form.set_plan(replace(plan, fly=replace(plan.fly, baselines=False)))
    qtbot.mouseClick(form.line_baselines, QtCore.Qt.MouseButton.LeftButton)  # the user ticks it
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(window.scan.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert ended.args[0] == "finished", ended.args[1]

    gui_plan, gui_fly, gui_bz = stored(tmp_path / "session.h5", "f")
    assert gui_plan["fly"] == cli_plan["fly"]
    assert gui_plan.keys() == cli_plan.keys()
    for key, value in cli_plan.items():
        if isinstance(value, str):
            assert gui_plan[key] == value, key
        elif key != "fly":  # the form holds µm to its decimals: equal to rounding
            assert gui_plan[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert gui_fly == cli_fly
    for bz in (cli_bz, gui_bz):  # each line's median taken out, as the plan says
        np.testing.assert_allclose(np.median(bz, axis=1), 0.0, atol=1e-15)
