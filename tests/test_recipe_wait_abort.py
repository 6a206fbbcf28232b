"""A recipe's `wait` step (minutes for a sample to settle in its field) acts on an abort
within `STOP_SLICE_S` of the rig's clock: the rig is made safe then, the field ramped down,
not once the wait has run out. Continued (`run --continue`), a wait cut off so runs again in
full, after the field steps before it have set the field again."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import smm_daq.acquisition.recipe as recipe_module
from smm_daq.cli.main import main
from smm_daq.clock import VirtualClock
from smm_daq.instruments import interfaces
from smm_daq.storage.nexus import list_entries

WAIT_S = 600.0
INTO_WAIT_S = 100.05  # when the signal comes, counted from the wait's start: within a slice

RECIPE = f"""[scan_defaults]
center_um = [12500.0, 12500.0]
size_um = [40.0, 20.0]
step_um = 20.0

[[step]]
kind = "zero_field"

[[step]]
kind = "scan"
name = "rem"

[[step]]
kind = "set_field"
field_uT = [0.0, 40.0, 0.0]

[[step]]
kind = "wait"
seconds = {WAIT_S:g}

[[step]]
kind = "scan"
name = "inf"
"""


class Run:
    """`smm-daq run` of `RECIPE` on the simulator, its steps noted with the rig-clock time
    each began, its rig's making safe with the time it began (at each scan's end too); with
    `signal_in_wait`, SIGTERM comes `INTO_WAIT_S` into the wait step, its handler running as
    the sleep under way returns (as on Windows, whose sleep wakes for Ctrl-C alone, not for
    Ctrl-Break)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, signal_in_wait: bool) -> None:
        self.steps: list[tuple[float, str]] = []
        self.made_safe: list[float] = []
        self.signalled: list[float] = []  # the rig-clock time the signal came at
        self.rig: Any = None
        real = recipe_module.run_recipe

        def noted(recipe: Any, session: Any, *, on_step: Any, **kwargs: Any) -> list[str]:
            self.rig = rig = session.rig
            clock, sleep, make_safe = rig.clock, rig.clock.sleep, rig.make_safe

            def step(i: int, text: str) -> None:
                self.steps.append((clock.now(), text))
                on_step(i, text)

            def sleeping(seconds: float) -> None:
                began = clock.now()
                sleep(seconds)
                at = self._wait_began() + INTO_WAIT_S if signal_in_wait else None
                if at is not None and not self.signalled and began < at <= clock.now():
                    self.signalled.append(at)
                    signal.raise_signal(signal.SIGTERM)

            def make_safe_noted() -> list[str]:
                self.made_safe.append(clock.now())
                return make_safe()

            monkeypatch.setattr(clock, "sleep", sleeping)
            monkeypatch.setattr(rig, "make_safe", make_safe_noted)
            return real(recipe, session, on_step=step, **kwargs)

        monkeypatch.setattr(recipe_module, "run_recipe", noted)

    def _wait_began(self) -> float:
        """When the wait step began on the rig's clock (inf before it began)."""
        return next((t for t, text in self.steps if text.startswith("wait")), np.inf)

    def began(self, prefix: str) -> float:
        return next(t for t, text in self.steps if text.startswith(prefix))


@pytest.fixture
def recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.toml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def test_a_signal_during_a_recipes_wait_makes_the_rig_safe_within_a_slice(
    recipe: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM 100 s into the 600 s wait at 40 µT: the wait ends at its slice under way and
    the rig is made safe within `STOP_SLICE_S` of the signal, the field ramped down. Unfixed,
    the wait was one sleep of 600 s, the signal acted on only at its end, 500 s late."""
    run = Run(monkeypatch, signal_in_wait=True)
    assert main(["run", "r.toml", "--out", "s.h5"]) == 130
    err = capsys.readouterr().err
    assert len(run.signalled) == 1, err
    after = [t for t in run.made_safe if t >= run.signalled[0]]  # (the first scan's end too)
    assert len(after) == 1, (run.signalled, run.made_safe)
    late = after[0] - run.signalled[0]
    assert 0 <= late <= interfaces.STOP_SLICE_S + 1e-9, late
    assert "the rig is safe" in err, err
    assert np.abs(run.rig.world.coils.currents()).max() < 1e-6  # 40 µT: 0.8 A on coil y
    assert [t for _, t in run.steps][-1] == "wait 600 s"  # nothing after the wait began
    assert {e.name: e.status for e in list_entries(recipe.with_name("s.h5"))} == {"rem": "finished"}


def test_a_recipe_cut_off_during_its_wait_waits_again_in_full_when_continued(
    recipe: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cut off 100 s into its 600 s wait (the field made safe meanwhile), `run --continue`
    skips the finished scan, sets the field again and waits the whole 600 s from then before
    the next scan: what the sample settles for begins again with the field."""
    Run(monkeypatch, signal_in_wait=True)
    assert main(["run", "r.toml", "--out", "s.h5"]) == 130
    capsys.readouterr()
    run = Run(monkeypatch, signal_in_wait=False)
    assert main(["run", "r.toml", "--out", "s.h5", "--continue"]) == 0
    err = capsys.readouterr().err
    assert "step 2/5: scan 'rem'" in err and ": skipped (finished in s.h5 already)" in err
    assert "step 4/5: wait 600 s: waits again in full (the field was ramped down" in err, err
    said = [text for _, text in run.steps]
    assert said[2:] == [
        "set field (0, 40, 0) µT",
        f"wait 600 s: waits again in full ({recipe_module.WAIT_AGAIN_WHY})",
        "scan 'inf' 3 × 2 points at (0, 40, 0) µT",
    ], said
    assert run.began("scan 'inf'") - run.began("wait") >= WAIT_S
    assert {e.name: e.status for e in list_entries(recipe.with_name("s.h5"))} == {
        "rem": "finished",
        "inf": "finished",
    }


@pytest.mark.parametrize("seconds", [0.0, 0.05, 600.0, 600.05])
@pytest.mark.parametrize("start", [0.0, 1234.567])
def test_a_wait_ends_at_its_end_on_the_rigs_clock(seconds: float, start: float) -> None:
    """Thousands of slices of 0.1 s add up to the wait's length, not a slice short or over
    (599.9, 600.1 s): the last slice is what is left of it. It ran out: nothing left."""
    clock = VirtualClock(start)
    assert recipe_module.wait_in_slices(clock, seconds) == 0.0
    assert clock.now() == start + seconds


def test_a_wait_stopped_says_how_much_of_it_was_left() -> None:
    """`stopped()` true before the wait's 1001st slice: it ends there, 100 s into its 600 s,
    and says that 500 s of it were not waited (the window fails the step with it)."""
    clock = VirtualClock()
    asked: list[float] = []

    def stopped() -> bool:
        asked.append(clock.now())
        return len(asked) > 1000

    left = recipe_module.wait_in_slices(clock, WAIT_S, stopped)
    assert clock.now() == pytest.approx(100.0)
    assert left == pytest.approx(500.0)
