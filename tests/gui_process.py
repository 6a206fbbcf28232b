"""What the scripts that run `smm-daq gui` in a process of its own share."""

from __future__ import annotations

# Put before a script that runs `smm-daq gui --time-scale S` on the simulator: the rig's
# connect runs as fast as possible (at S = 1 it waited ~7 s of the simulated instruments'
# start-up for real), then its clock runs at S from the moment the window has the rig. What
# the tests look at comes after the connect: a scan, a field, signals, the close, all at S.
CONNECT_AT_ONCE = """
from smm_daq.instruments import rig as _rig_module

_open_rig = _rig_module.open_rig

def _open_rig_at_once(profile, *args, time_scale=None, **kwargs):
    rig = _open_rig(profile, *args, time_scale=0.0, **kwargs)
    rig.clock.time_scale = float(time_scale or 0.0)
    return rig

_rig_module.open_rig = _open_rig_at_once
"""
