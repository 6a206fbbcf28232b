"""A profile's stage.settle_time_s at the most the loader takes (60 s) still lets a motor
stage be referenced at connect (found fuzzing the profile's values within their bounds)."""

from __future__ import annotations

from pathlib import Path

from fuzz_harness import Case, run_all

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
