"""Time-like values are bounded before anything moves: per-point settle and dwell, recipe waits,
the simulator's pace, and the whole scan's or recipe's estimated duration (at most a week)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import MAX_DURATION_S, ScanPlan
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile

SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "40,40", "--step-um", "20",
        "--name", "k"]


@pytest.mark.parametrize(("extra", "words"), [
    (["--settle-tau", "1e300"], "--settle-tau is 1e+300; expected 0 to 1000"),
    (["--settle-tau", "nan"], "--settle-tau is nan"),
    (["--dwell-tau", "1e12"], "--dwell-tau is 1000000000000.0; expected 0 to 1000"),
    (["--time-scale", "1e-310"], "--time-scale is 1e-310; expected 0 (as fast as possible) or"),
    (["--step-um", "1e-310"], "makes inf points along x"),
    (["--size-um", "3000,3000", "--step-um", "1"], "expected at most 7 days"),
    (["--size-um", "1000,1000", "--step-um", "5", "--settle-tau", "999"], "14 days"),
])
def test_scan_refuses_absurd_times_before_anything_moves(tmp_path, capsys, extra, words):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists()


def test_a_plan_beyond_a_week_is_refused_by_validate() -> None:
    profile = load_profile()
    plan = ScanPlan.from_center("big", (12.5e-3, 12.5e-3), (4e-3, 4e-3), 2e-6)
    assert plan.estimate_duration(profile) > MAX_DURATION_S
    with pytest.raises(InputError, match=r"estimated to take .* days"):
        plan.validate(profile)
    ScanPlan.from_center("ok", (12.5e-3, 12.5e-3), (2e-3, 2e-3), 20e-6).validate(profile)


def test_a_flown_plan_beyond_a_week_is_refused_in_its_lines_and_pixels() -> None:
    """A flown plan has no points nor settle and dwell: its refusal says its lines of pixels
    and their pixel time. Unfixed, it said "1001 × 1001 points at 0.255 s each" (a step
    scan's time a point, not the 1 s pixel flown) and to use fewer settle/dwell time
    constants, which a flown line does not take."""
    plan = ScanPlan.from_center("big", (12.5e-3, 12.5e-3), (20e-3, 20e-3), 20e-6,
                                fly=FlySettings(pixel_time=1.0))
    with pytest.raises(InputError) as refused:
        plan.validate(load_profile())
    assert str(refused.value) == (
        "plan 'big' is estimated to take 11.6 days (1001 lines of 1001 pixels flown at 1 s a "
        "pixel); expected at most 7 days (a coarser step, a smaller area, a shorter pixel "
        "time, or several scans)")


def recipe(tmp_path: Path, steps: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(textwrap.dedent("""
        [scan_defaults]
        center_um = [12500.0, 12500.0]
        size_um = [40.0, 40.0]
        step_um = 20.0
    """) + textwrap.dedent(steps))
    return path


@pytest.mark.parametrize(("steps", "words"), [
    ('[[step]]\nkind = "wait"\nseconds = 1e300\n',
     "step 1 (wait): 'seconds' is 1e+300; expected a number from 0 to 172800"),
    ('[[step]]\nkind = "scan"\nname = "a"\nsettle_tau = 1e300\n',
     "'settle_tau' is 1e+300; expected a number from 0 to 1000"),
    ('[[step]]\nkind = "wait"\nseconds = 172800\n' * 4,
     "the recipe is estimated to take 8 days"),
    # a word where a bounded number goes is told the range, as a number out of it is
    ('[[step]]\nkind = "wait"\nseconds = "x"\n',
     "step 1 (wait): 'seconds' is 'x'; expected a number from 0 to 172800"),
    ('[[step]]\nkind = "scan"\nname = "a"\nsettle_tau = "long"\n',
     "'settle_tau' is 'long'; expected a number from 0 to 1000"),
])
def test_recipe_refuses_absurd_times_before_its_first_step(tmp_path, capsys, steps, words):
    out = tmp_path / "s.h5"
    assert main(["run", str(recipe(tmp_path, steps)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists()


def test_run_shows_the_recipe_estimate_with_its_waits(tmp_path, capsys):
    steps = '[[step]]\nkind = "wait"\nseconds = 7200\n[[step]]\nkind = "scan"\nname = "a"\n'
    assert main(["run", str(recipe(tmp_path, steps)), "--out", str(tmp_path / "s.h5")]) == 0
    assert "estimated 2h00m of instrument time" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "words"), [
    (["calibrate-coils", "--time-scale", "1e-310"], "--time-scale is 1e-310"),
    (["serve-sim", "--time-scale", "1e-310"], "--time-scale is 1e-310; expected 0.001 to"),
    (["serve-sim", "--duration-s", "1e300"], "--duration-s is 1e+300; expected 0 to"),
])
def test_other_commands_bound_their_times_too(tmp_path, capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize("value", [5.0, "x"])
def test_a_recipe_number_bounded_above_only_is_told_its_bound(value) -> None:
    """A number with an upper bound alone, out of it or no number, is told that bound: the
    check refused 5 above 1 as 'expected a finite number', which 5 is."""
    from smm_daq.acquisition.recipe import _Table

    with pytest.raises(InputError, match=r"expected a number <= 1$"):
        _Table("r.toml", "step 1 (wait)", {"seconds": value}).number("seconds", hi=1.0)
