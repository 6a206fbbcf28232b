"""Fuzzing a profile's values within the bounds its loader takes, which the other fuzz tests
leave out (they give values beyond them): a profile that loads must be one the rig's drivers
accept at connect. A stage.settle_time_s of up to 60 s must still let a motor stage be
referenced; a lock-in's sine-output amplitude the model named cannot give must be refused when
the profile is loaded, naming the key, not by its driver at connect (exit 1, "does not
answer") after the rest of the rig had connected."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_harness import Case, run_all
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
PROFILE = (REPO / "configs" / "simulator.toml").read_text()
SCAN = ["--center-um", "12500,12500", "--size-um", "10,10", "--step-um", "10", "--name", "s",
        "--time-scale", "0"]


def test_the_longest_settle_time_a_profile_takes_still_references_the_stage(
        tmp_path: Path) -> None:
    """stage.settle_time_s is taken up to 60 s, but the motor stage's reference move was given
    2 × travel / velocity + 10 s (35 s here) to report its axes referenced, which they do once
    settled at the switch: from 26 s on, every scan failed to connect."""
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE.replace("settle_time_s = 0.005", "settle_time_s = 60.0"))
    out = tmp_path / "o.h5"
    _, failures = run_all([Case("profile", "settle_time_s = 60", ["scan", *SCAN, "--out",
                                                                   str(out), "--profile",
                                                                   str(profile)],
                                [profile], [], [profile.name], may_pass=True)])
    assert not failures, "\n".join(failures)
    assert out.exists()


AMPLITUDES = st.one_of(st.sampled_from([1e-9, 0.001, 0.0039, 0.004, 2.0, 2.5, 5.0]),
                       st.floats(min_value=1e-9, max_value=5.0))


@pytest.mark.parametrize("model", ["sr830", "sr860"])
@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(amplitude=AMPLITUDES)
def test_a_lockin_amplitude_the_profile_takes_is_one_its_model_gives(
        tmp_path_factory: pytest.TempPathFactory, model: str, amplitude: float) -> None:
    """The SR830 gives 4 mV .. 5 V, the SR860 1 nV .. 2 V; the profile took 1 nV .. 5 V for
    either, and the driver refused the rest at connect."""
    profile = tmp_path_factory.mktemp("amplitude") / "p.toml"
    profile.write_text(PROFILE.replace('implementation = "sr830"', f'implementation = "{model}"')
                       .replace("reference_amplitude_V = 1.0",
                                f"reference_amplitude_V = {amplitude!r}"))
    _, failures = run_all([Case("profile", f"{model} {amplitude!r} V",
                                ["check", "--profile", str(profile)], [profile], [],
                                [profile.name, "lockin.reference_amplitude_V",
                                 model.upper()], may_pass=True)])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("height", ["400.5", "10000.0"])
def test_a_profile_height_beyond_the_stage_is_refused_naming_the_profile(tmp_path: Path,
                                                                         height: str) -> None:
    """sensor.height_um is taken up to 10,000 µm, the E-727 stage's z travel is 400 µm: a scan
    without --height-um was refused naming --height-um, an option it was not given."""
    profile = tmp_path / "p.toml"
    profile.write_text((REPO / "configs" / "simulator-e727.toml").read_text().replace(
        "height_um = 100.0", f"height_um = {height}"))
    out = tmp_path / "o.h5"
    argv = ["scan", "--profile", str(profile), "--center-um", "900,900", "--size-um", "10,10",
            "--step-um", "10", "--name", "s", "--out", str(out)]
    _, failures = run_all([Case("profile", f"height_um = {height}", argv, [profile], [out],
                                [profile.name, "sensor.height_um", "no --height-um"])])
    assert not failures, "\n".join(failures)
