"""A field ramp's stop begins its make-safe path on the rig's own clock."""

from __future__ import annotations

import pytest

from smm_daq.clock import SystemClock, VirtualClock
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.ramp_stop import RampStop
from smm_daq.instruments.rig import safe_from


def test_a_stop_on_another_clock_than_the_rigs_is_refused() -> None:
    """The deadline counts from the stop's time, compared with the rig's clock: a stop timed
    on the system clock for a rig on a virtual one (or the other way) would put it anywhere,
    the path unbounded or cut at once, so it is refused before the ramp begins."""
    with pytest.raises(ValueError, match="not on the rig's clock"), \
            safe_from(load_profile(), VirtualClock(), RampStop(SystemClock())):
        pass

