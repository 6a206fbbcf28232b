"""Several names in one box (the MMT tab's joint entries and mask files): separated by commas,
a name that holds a comma (legal in a file name on every system and in an entry's), begins with
a double quote or has spaces at either end written in double quotes, a quote inside doubled, as
a spreadsheet's CSV writes it: `a.npy, "scan 3, after AF.png", none`.

What the window writes into a box (`joined`) reads back as the same names (`names`); text that
cannot be read as names (a quote left open, text after a closing quote) is refused, never
guessed at."""

from __future__ import annotations

from collections.abc import Iterable

from smm_daq.errors import InputError

QUOTE = '"'
RULE = ("names separated by commas; a name holding a comma, or a double quote at its start, "
        'in double quotes ("a, b.png"), a double quote inside doubled')


def names(text: str) -> list[str]:
    """The names `text` gives, in order; blank ones (two commas together, one at the end)
    left out. InputError saying where, and what was expected, where `text` is no such list."""
    found: list[str] = []
    at, size = 0, len(text)
    while at <= size:
        while at < size and text[at].isspace():
            at += 1
        if at < size and text[at] == QUOTE:
            name, at = _quoted(text, at)
            found.append(name)
            while at < size and text[at].isspace():
                at += 1
            if at < size and text[at] != ",":
                raise InputError(f"{text[at:]!r} follows the closing quote of {name!r}; "
                                 f"expected a comma before the next name ({RULE})")
        else:
            end = text.find(",", at)
            end = size if end < 0 else end
            bare = text[at:end].strip()
            if bare:
                found.append(bare)
            at = end
        at += 1  # past the comma
    return found


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The name in quotes opening at `start`, and where its closing quote ends."""
    name: list[str] = []
    at = start + 1
    while True:
        close = text.find(QUOTE, at)
        if close < 0:
            raise InputError(f"the quote opened before {text[start + 1:]!r} is not closed; "
                             f"expected {RULE}")
        name.append(text[at:close])
        if text.startswith(QUOTE * 2, close):  # a quote inside the name
            name.append(QUOTE)
            at = close + 2
            continue
        if not "".join(name):
            raise InputError(f"a name is empty quotes at character {start + 1}; expected "
                             "a name in them")
        return "".join(name), close + 1


def joined(items: Iterable[str]) -> str:
    """`items` as a box holds them, each read back by `names` as itself."""
    return ", ".join(_written(item) for item in items)


def _written(name: str) -> str:
    if "," in name or name.startswith(QUOTE) or name != name.strip():
        return QUOTE + name.replace(QUOTE, QUOTE * 2) + QUOTE
    return name
