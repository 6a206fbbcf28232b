"""The served rig's links time out where the fault proxy withheld a reply, and each timeout
takes the link's timeout on the served world's clock, as it would on a real rig: the deadlines
on that clock (the make-safe path's) see it, however fast the machine decided it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from served_rig import ServedRig, links_time_out_only_where_faked, served_to_pyvisa_py

from smm_daq.errors import InstrumentLost
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

TIMEOUT_S = 0.3  # the profile's link timeout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedRig]:
    with served_to_pyvisa_py(tmp_path, time_scale=0, timeout_s=TIMEOUT_S) as rig, \
            links_time_out_only_where_faked(rig):
        yield rig


def test_a_withheld_reply_times_out_taking_the_links_timeout_on_the_served_clock(
        served: ServedRig) -> None:
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        link = rig.lockin.link  # type: ignore[attr-defined]
        served.proxies["lockin"].hold()
        before = served.clock.now()
        with pytest.raises(InstrumentLost, match=r"no valid reply to '\*IDN\?'.*no reply within"):
            rig.lockin.identify()  # type: ignore[attr-defined]
        attempts = link.retries + 1
        assert served.clock.now() - before == pytest.approx(attempts * TIMEOUT_S)
        served.proxies["lockin"].restore()
        assert "SR830" in str(rig.lockin.identify())  # type: ignore[attr-defined]
        assert served.clock.now() - before == pytest.approx(attempts * TIMEOUT_S)
    finally:
        rig.close()
