"""Calls of the instrument interfaces that drivers from outside the repository (the
`smm_daq.drivers` entry point, `smm_daq.plugins`) written against an earlier form of them
still take.

`LockIn.reference` takes `stop=` (asked between its frequency and its amplitude, so that an
abort asks no more); a driver whose `reference(self)` takes none is called without it, its
two exchanges then read as one, as before. Whether it takes one is decided once per driver
class, from its signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from smm_daq.instruments.interfaces import LockIn


def reference(lockin: LockIn, *, stop: Callable[[], bool] | None = None) -> tuple[float, float]:
    """`lockin.reference(stop=stop)`, or `lockin.reference()` where its driver's takes no
    `stop`."""
    if stop is not None and _reference_takes_stop(type(lockin)):
        return lockin.reference(stop=stop)
    return lockin.reference()


@functools.cache
def _reference_takes_stop(driver: type) -> bool:
    """Whether `driver.reference` takes a `stop` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(driver.reference).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): called as before
        return False
    return any((p.name == "stop" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
               or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
