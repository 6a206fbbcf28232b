"""Making the rig safe and closing it as a command or a window ends, within a time limit.

The making safe runs in a thread of its own and is waited for `safe_wait_s` at most: an
instrument whose link is stuck, or another thread's making safe that has not ended (it holds
the rig's own lock meanwhile, so the next one waits for it), must not keep the program from
ending with nobody told. Past the limit that thread is left to it (a daemon: the process may
end meanwhile; it closes the rig if its making safe ever returns), and the caller says that
the rig may not be safe and what makes it safe.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from smm_daq import interrupts
from smm_daq.acquisition.aside import Aside
from smm_daq.acquisition.sequencer import ended_past_signals, wait_awake
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.rig import safe_command_hint
from smm_daq.instruments.safe_bound import real_time_bound

THREAD = "making the rig safe to close it"  # the name of the thread that does it


def wait_s(profile: Profile, time_scale: float) -> float:
    """Real seconds to wait for making a rig of `profile` safe: the most it may take at the
    profile's ramp rate and link timeouts (`safe_time_bound`, in the rig clock's seconds),
    longer for a simulated rig run slower than real time (`time_scale` simulated seconds a
    real second; 0: as fast as it can, or a real rig)."""
    return real_time_bound(profile, time_scale)


def safe_wait_s(rig: Any) -> float:
    """`wait_s` for an open rig (its clock says how fast a simulated one runs)."""
    return wait_s(rig.profile, getattr(rig.clock, "time_scale", 0.0))


def make_safe_and_close(rig: Any, occasion: str = "at the close") -> tuple[bool, list[str]]:
    """Make `rig` safe, then close it (which lets other processes have it), waiting
    `safe_wait_s(rig)` at most: whether that ended in time, and what could not be done (not
    ended: one problem, saying so, and when it was made safe: `occasion`). An error closing
    the rig is raised here. A script's Ctrl-C meanwhile is raised once the making safe has
    ended (one not ended is said with it), unless the close runs as a Ctrl-C is handled: that
    one goes on, this one only acknowledged."""
    within = safe_wait_s(rig)

    def work() -> list[str]:
        try:
            return list(rig.make_safe())
        except Exception as exc:  # make_safe should not raise; never let it hide the rest
            return [f"make_safe raised {type(exc).__name__}: {exc}"]
        finally:
            rig.close()  # an error closing it (or make_safe's KeyboardInterrupt): the caller's

    aside = Aside(work, THREAD)
    # a close as a Ctrl-C is handled (a `with` block's exit): a later one is its
    handling = isinstance(sys.exception(), KeyboardInterrupt)
    # a signal from now on is only acknowledged
    with interrupts.making_safe(within, stopping=True):
        deadline = time.monotonic() + within
        try:  # a signal may come as soon as the thread runs, before start() returns
            aside.start()
            ended = wait_awake(aside.done, within)
        except KeyboardInterrupt as exc:  # a script's Ctrl-C (Python's own handler): raised
            # once the making safe ends, else the script ends and kills it (a daemon), the
            # field on; one that has not ended is said with it (nothing else says it then)
            if handling:
                interrupts.acknowledge(str(exc) or "SIGINT")
            ended = ended_past_signals(aside, deadline)
            if not handling:
                if not ended:
                    exc.add_note(f"rig NOT safe: {_not_ended(occasion, within)}. "
                                 + safe_command_hint(rig.profile))
                raise
    if not ended:
        return False, [_not_ended(occasion, within)]
    return True, aside.result()


def _not_ended(occasion: str, within: float) -> str:
    return (f"making it safe {occasion} did not end within {within:.0f} s (an instrument "
            "not answering, or a making safe under way in another thread that has not ended); "
            "the program does not wait for it any longer")
