"""Parsers for command-line values, each failing with a message that names the option."""

from __future__ import annotations

import math

from smm_daq.errors import InputError


def floats(option: str, text: str, n: int) -> tuple[float, ...]:
    """Parse 'a,b[,c]' into n finite floats, or raise InputError naming `option`."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise InputError(f"{option} is {text!r}; expected {n} comma-separated numbers")
    return values


def positive(option: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} is {value!r}; expected a number > 0")
    return value
