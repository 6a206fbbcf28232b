"""A scan's notes as its final message tells them: a few of each kind, then how many more.

A scan notes every lost reply and every range change it takes in its stride; a long scan on a
poor link may take hundreds, each its own note. The final message (printed whole on the
terminal, shown in the window, stored in the entry's status message) tells the first few of
each kind and counts the rest; `Sequencer.notes` keeps every one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SHOWN_OF_A_KIND = 3


def _kind(note: str) -> str:
    """Notes alike but for their numbers (a line, a reading, a range) are of one kind."""
    return re.sub(r"\d+", "#", note)


def told(notes: Sequence[str], shown: int = SHOWN_OF_A_KIND) -> str:
    """`notes` joined with "; ", each kind's first `shown` only (in the order each kind was
    first noted), the rest of that kind counted as "and N more like it"."""
    kinds: dict[str, list[str]] = {}
    for note in notes:
        kinds.setdefault(_kind(note), []).append(note)
    parts: list[str] = []
    for alike in kinds.values():
        parts.extend(alike[:shown])
        if len(alike) > shown:
            parts.append(f"and {len(alike) - shown} more like it")
    return "; ".join(parts)
