"""Numbers as an operator types them into the window's boxes.

A decimal comma (a European keyboard's numeric pad types one) is a decimal point: it was
dropped as a thousands separator, so 0,03 s became 3 s and 2,5 µT became 25 µT, without a
word. Where the locale's decimal mark is a point, a comma that may be either ("1,000": 1000,
or 1?) is no number, and where it is a comma, so is a point that may be either ("1.000", which
Qt's own box there read as 1000), with an exponent or without (1,000e3); a number with both
a comma and a point is none anywhere. The lock-in's settings take the unit's prefix, as its
front panel says them (200 µV, 200u, 0.0002 V alike).
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# 1,000 or 12.500: a thousand, or 1.0? (1,000e3 likewise: a million, or a thousand?)
_THOUSANDS = re.compile(r"[+-]?[1-9]\d{0,2}[,.]\d{3}(?:[eE][+-]?\d+)?")
PREFIX_SCALE = {"": 1.0, "m": 1e-3, "µ": 1e-6, "μ": 1e-6, "u": 1e-6, "n": 1e-9}
# a number, an SI prefix (u for µ too) and the unit, prefix and unit optional: "200 µV", "5m"
_SI_NUMBER = re.compile(r"\s*([+-]?[\d.,]*(?:[eE][+-]?\d+)?)\s*([mµμun]?)\s*([A-Za-z]*)\s*")


def decimal_number(text: str, decimal_comma: bool = False) -> float | None:
    """`text` as a finite number ("2.5", "2,5", "-1e-3"), or None; `decimal_comma`: the
    locale's decimal mark is a comma (its boxes show 2,500), so "1,000" is 1, "1.000" none."""
    text = text.strip()
    if _THOUSANDS.fullmatch(text) and ("." in text) == decimal_comma:
        return None  # the mark groups thousands in the locale
    if "," in text:
        if "." in text or text.count(",") > 1:
            return None
        text = text.replace(",", ".")
    if _NUMBER.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def si_number(text: str, unit: str, decimal_comma: bool = False) -> float | None:
    """The number `text` says in `unit` ("200 µV", "0.0002", "30 ms", "30m", "0,03"), or
    None (`decimal_comma` as for `decimal_number`)."""
    match = _SI_NUMBER.fullmatch(text)
    if match is None or match.group(3) not in ("", unit):
        return None
    number = decimal_number(match.group(1), decimal_comma)
    return None if number is None else number * PREFIX_SCALE[match.group(2)]


def si_text(value: float, unit: str) -> str:
    """`value` with the prefix (n, µ, m, none) that leaves 1 to 999 before it: 200 µV, 30 ms,
    1 s, 30000 s."""
    prefix, scale = next(((p, s) for p, s in (("", 1.0), ("m", 1e-3), ("µ", 1e-6))
                          if abs(value) >= s * (1 - 1e-9)), ("n", 1e-9))
    return f"{value / scale:.6g} {prefix}{unit}"


def si_examples(value: float, unit: str) -> str:
    """Ways to type `value`: "500 mV, 500m or 0.5", "200 µV, 200u or 0.0002", "1 s or 1"."""
    text = si_text(value, unit)
    short = text.removesuffix(unit).replace(" ", "").replace("µ", "u")
    return f"{text} or {value:g}" if short == f"{value:g}" else f"{text}, {short} or {value:g}"
