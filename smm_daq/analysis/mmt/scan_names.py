"""Checks of the scans named for an inversion, apart from the solver: the window's thread
runs them as Invert is clicked, and importing the solver's modules there (SciPy's statistics,
numba) held the window for seconds on the first click."""

from __future__ import annotations

from smm_daq.errors import InputError


def check_each_scan_once(names: list[str]) -> None:
    """Refuse a scan named twice: its rows counted twice would halve its variance."""
    if len(set(names)) != len(names):
        raise InputError(f"scans {', '.join(names)}: expected each scan once (a scan counted "
                         "twice would halve its variance)")
