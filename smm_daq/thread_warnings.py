"""Warnings recorded per thread, for code that says a library's warnings in its own words.

`warnings.catch_warnings` swaps the process's warning filters and `showwarning` on entry and
puts back what it found on exit: two threads inside it at once catch each other's warnings
(an image's damage among an inversion's notes) and, leaving out of order, can put back the
other's recorder for good (every later warning lost). `recorded()` keeps one record per
thread instead: while any thread holds one open, the process's `showwarning` hands each
warning to the record its own thread holds open (the innermost) or, from a thread holding
none, on to the `showwarning` in force before, so no other thread's warning is lost.

The filters (-W, PYTHONWARNINGS, a caller's `simplefilter`) decide a recording thread's
warnings as any other's: "error" raises, "ignore" drops, and what they would show is recorded
instead. What they would show once ("default", "module", "once") is recorded each time (the
same image read twice says its damage twice): while any record is open, each such filter has
a twin before it, alike but for "always" and a message pattern that matches only in a thread
whose innermost record is open (and, after the last filter, one for the default action).
`recorded(whatever_the_filters=True)` records every warning, as a caller that warns each
again itself wants (the filters then decide there): one filter leads the others with "always"
for the threads whose innermost record is such a one. A filter that said "always" to every
thread turned another thread's errors into printed lines; every other thread's warnings meet
the filters they met before. Opening the first record bumps the filters' version, so no
registry holds back a warning shown once before; a warning that another thread shows once
while a record is open, from the same line, is held back in the recording thread too (the
registry is per module, not per thread).

Every catcher in the project goes through here; one that swaps the warnings state itself (a
test's `pytest.warns`, a library's `catch_warnings`) and leaves while a record is open takes
the record's hook with it, and nothing here puts back what it did not put there. One that
entered while a record was open and leaves after it closed puts the twins and the hook back:
they then do nothing (no thread holds a record, so the twins match in none, and the hook
hands every warning on); the next record to open replaces them.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
# thread id: its records, inner last, each with whether it takes warnings whatever the filters
_open: dict[int, list[tuple[list[warnings.WarningMessage], bool]]] = {}
_previous: Callable[..., Any] = warnings.showwarning  # in force when the first record opened
_SHOWN_ONCE = ("default", "module", "once")


class _Recording(Warning):
    """A category no warning has: its filter, put in by `simplefilter`, makes way for ours."""


class _InRecordingThread:
    """A filter's message pattern (the filters ask it `match(text)`) that matches `message`'s
    texts (any when None) in a thread whose innermost open record takes warnings whatever the
    filters or not, as `whatever` says, and in no other thread."""

    def __init__(self, message: Any, whatever: bool) -> None:
        self.message = message
        self.whatever = whatever

    def match(self, text: str) -> bool:
        records = _open.get(threading.get_ident())
        if not records or records[-1][1] is not self.whatever:
            return False
        return self.message is None or bool(self.message.match(text))

    def __repr__(self) -> str:
        return f"<in a thread recording its warnings ({self.message!r})>"


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: Any = None, line: str | None = None) -> None:
    records = _open.get(threading.get_ident())
    if records:
        records[-1][0].append(warnings.WarningMessage(message, category, filename, lineno,
                                                      file, line))
    else:
        _previous(message, category, filename, lineno, file, line)


@contextmanager
def recorded(*, whatever_the_filters: bool = False) -> Iterator[list[warnings.WarningMessage]]:
    """The warnings raised in this thread inside the block, in a list, instead of shown:
    those the filters would show (each time), or all of them if `whatever_the_filters`."""
    global _previous
    me = threading.get_ident()
    record: list[warnings.WarningMessage] = []
    with _lock:
        if not _open:
            if warnings.showwarning is not _show:  # not _show put back by a catcher that saved it
                _previous = warnings.showwarning
            _lead_filters()
            warnings.showwarning = _show
        _open.setdefault(me, []).append((record, whatever_the_filters))
    try:
        yield record
    finally:
        with _lock:
            records = _open[me]
            del records[next(i for i, (r, _) in enumerate(records) if r is record)]
            if not records:
                del _open[me]
            if not _open:
                if warnings.showwarning is _show:
                    warnings.showwarning = _previous
                warnings.filters[:] = _without_ours(warnings.filters)


def _without_ours(filters: list[Any]) -> list[Any]:
    return [f for f in filters if not isinstance(f[1], _InRecordingThread)]


def _lead_filters() -> None:
    """The filters with ours put in (once: any put back by a catcher that saved them are
    replaced), their version bumped so that no registry holds back a warning shown before:
    `simplefilter` bumps it, putting in a filter of a category no warning has, left out."""
    led: list[Any] = [("always", _InRecordingThread(None, True), Warning, None, 0)]
    for f in _without_ours(warnings.filters):
        if f[0] in _SHOWN_ONCE:
            led.append(("always", _InRecordingThread(f[1], False), *f[2:]))
        led.append(f)
    if warnings.defaultaction in _SHOWN_ONCE:
        led.append(("always", _InRecordingThread(None, False), Warning, None, 0))
    warnings.simplefilter("always", _Recording)
    warnings.filters[:] = led
