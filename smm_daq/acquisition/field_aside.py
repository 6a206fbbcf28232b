"""A field's ramp asked for in the main thread (`smm-daq run`'s set_field step, `demo`, the
Python API's `Session.set_field`) that a signal stops within the make-safe bound of the signal.

Run in the main thread, the ramp's exchanges would hold a signal until each ended, its
retries included (`interrupts.atomic`), and the making safe after it would count its deadline
from then. So the ramp runs in a thread of its own, and the main thread waits for it awake
(`wait_awake`): a signal reaches it at once, and sets the ramp's `RampStop` on the rig's clock.
The ramp's step under way and the making safe from where it got to are then one bounded
make-safe path from that time (`ramp_field`), which the main thread waits for as long as it
may take (`safe_close.safe_wait_s`), later signals only acknowledged: also where Python's own
handler raises `KeyboardInterrupt` for them (a script), so that no caller makes the rig safe,
or closes its links, beside the ramp's thread still in its step (`sequencer.wait_past_signals`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from smm_daq import interrupts
from smm_daq.acquisition.aside import Aside
from smm_daq.acquisition.safe_close import safe_wait_s
from smm_daq.acquisition.sequencer import ended_past_signals, wait_awake
from smm_daq.errors import RampStopped
from smm_daq.instruments.ramp_stop import RampStop, ramp_field

THREAD = "ramping the field"  # the name of the thread that ramps


def ramp_stopped_by_signal(rig: Any, b: np.ndarray,
                           made_safe: Callable[[list[str]], None]) -> None:
    """Ramp `rig`'s coils to the field `b` (T), raising what the ramp raises. A signal
    meanwhile (its `KeyboardInterrupt`) stops the ramp at its next step and the rig is made
    safe from there within `safe_time_bound` of the signal; `made_safe(problems)` is told
    what that could not do ([]: the rig is safe, and the `KeyboardInterrupt` notes where the
    ramp got to), then the `KeyboardInterrupt` is raised again. A ramp that ended before the
    stop reached it is not made safe here (`made_safe` is not called): that is the caller's."""
    stop = RampStop(rig.clock)
    within = safe_wait_s(rig)
    ramp = Aside(lambda: ramp_field(rig, b, stop), THREAD)
    try:  # a signal may come as soon as the thread runs, before start() returns
        ramp.start()
        wait_awake(ramp.done)
    except KeyboardInterrupt as interrupt:
        stop.set()
        # a signal from now on is only acknowledged (this one's stop is under way)
        with interrupts.making_safe(within, stopping=True):
            # started again where the signal came before its thread existed: the ramp,
            # stopped, makes the rig safe from where it is
            ended = ended_past_signals(ramp, time.monotonic() + within)
        stopped = ramp.raised()
        if not ended:
            made_safe([f"the field's ramp, stopped, was still making the rig safe {within:.0f} "
                       "s later, as long as that may take (an instrument not answering); the "
                       "program does not wait for it any longer"])
        elif isinstance(stopped, RampStopped) and stopped.safe_problems is not None:
            if not stopped.safe_problems:  # else the problems say more, at the close
                interrupt.add_note(str(stopped))
            made_safe(stopped.safe_problems)
        raise
    ramp.result()

