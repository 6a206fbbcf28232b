"""Calls made again once a link has dropped the rest of a reply cut short.

A link that must drain a serial line before its next exchange does so on a thread of its
own, and refuses every exchange meanwhile (`StillDropping`, nothing sent), so that a window's
Stop never waits behind the drain (`Link._drop_rest`). A caller that no Stop waits behind (a
scan's worker, a recipe's step) waits for the drop and asks again rather than failing on the
refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from smm_daq.errors import StillDropping
from smm_daq.instruments.interfaces import STOP_SLICE_S

T = TypeVar("T")


def once_dropped(call: Callable[[], T], check: Callable[[], None] = lambda: None) -> T:
    """`call()`, made again each time it is refused while a drop goes on, once that drop
    has ended; `check()` is called every `STOP_SLICE_S` of the wait and once it has ended,
    and ends it by raising (an abort: a scan's `_Aborted`; a Ctrl-C is raised between the
    slices in any case)."""
    while True:
        try:
            return call()
        except StillDropping as exc:
            while not exc.wait(STOP_SLICE_S):
                check()
            check()
