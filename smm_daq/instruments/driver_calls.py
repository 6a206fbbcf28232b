"""Calls of the instrument interfaces that drivers from outside the repository (the
`smm_daq.drivers` entry point, `smm_daq.plugins`) written against an earlier form of them
still take.

`LockIn.reference` takes `stop=` (asked between its frequency and its amplitude, so that an
abort asks no more); a driver whose `reference(self)` takes none is called without it, its
two exchanges then read as one, as before. So is `BufferedLockIn.read_buffer` (its `stop`
asked between its pieces): a driver's `read_buffer(self)` reads the whole buffer, as before;
and `BufferedLockIn.start_buffer` and `BufferedLockIn.configure_buffer` where its driver's take
one (asked while a capture under way is waited for to stop).
Whether a method takes one is decided once per driver class, from its signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from smm_daq.instruments.interfaces import BufferedLockIn, BufferTrace, LockIn


def reference(lockin: LockIn, *, stop: Callable[[], bool] | None = None) -> tuple[float, float]:
    """`lockin.reference(stop=stop)`, or `lockin.reference()` where its driver's takes no
    `stop`."""
    if stop is not None and _takes_stop(type(lockin), "reference"):
        return lockin.reference(stop=stop)
    return lockin.reference()


def read_buffer(lockin: BufferedLockIn, *,
                stop: Callable[[], bool] | None = None) -> BufferTrace:
    """`lockin.read_buffer(stop=stop)`, or `lockin.read_buffer()` where its driver's takes no
    `stop`."""
    if stop is not None and _takes_stop(type(lockin), "read_buffer"):
        return lockin.read_buffer(stop=stop)
    return lockin.read_buffer()


def start_buffer(lockin: BufferedLockIn, *, on_trigger: bool, pixel_time: float | None = None,
                 stop: Callable[[], bool] | None = None) -> float | None:
    """`lockin.start_buffer(..., stop=stop)`, or without `stop` where its driver's takes none."""
    if stop is not None and _takes_stop(type(lockin), "start_buffer"):
        return lockin.start_buffer(  # type: ignore[call-arg]
            on_trigger=on_trigger, pixel_time=pixel_time, stop=stop)
    return lockin.start_buffer(on_trigger=on_trigger, pixel_time=pixel_time)


def configure_buffer(lockin: BufferedLockIn, rate: float, *,
                     stop: Callable[[], bool] | None = None) -> float:
    """`lockin.configure_buffer(rate, stop=stop)`, or without `stop` where its driver's takes
    none."""
    if stop is not None and _takes_stop(type(lockin), "configure_buffer"):
        return lockin.configure_buffer(rate, stop=stop)
    return lockin.configure_buffer(rate)


@functools.cache
def _takes_stop(driver: type, method: str) -> bool:
    """Whether `driver`'s `method` takes a `stop` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(getattr(driver, method)).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): called as before
        return False
    return any((p.name == "stop" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
               or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
