"""The profile `ServedRig` drives its served instruments with is what `serve-sim
--profile-out` writes: every test on it reads it as an operator's command would."""

from __future__ import annotations

import warnings
from pathlib import Path

from served_rig import SIM_PROFILE, ServedRig

from smm_daq.cli.served_profile import served_profile_text
from smm_daq.instruments.profile import load_profile


def test_the_served_rig_profile_is_what_serve_sim_writes_and_loads_without_a_warning(
        tmp_path: Path) -> None:
    """Unfixed, it kept the stage's `baud_rate` on a socket address: every load warned it
    ignored (23 ProfileWarnings in one fuzz file's summary), which serve-sim's profile never
    does."""
    served = ServedRig(tmp_path, time_scale=0, timeout_s=0.3)
    try:
        resources = {a: served.proxies[role].resource for role, a in served.roles.items()}
        text = served.profile_path.read_text()
        assert text.replace("timeout_s = 0.3\n", "") == served_profile_text(
            load_profile(SIM_PROFILE), resources)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            profile = load_profile(served.profile_path)
        assert not profile.simulated and profile.stage.link.address == resources[
            served.sim_profile.stage.link.address]
    finally:
        served.close()
