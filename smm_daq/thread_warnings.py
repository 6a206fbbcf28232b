"""Warnings recorded per thread, for code that says a library's warnings in its own words.

`warnings.catch_warnings` swaps the process's warning filters and `showwarning` on entry and
puts back what it found on exit: two threads inside it at once catch each other's warnings
(an image's damage among an inversion's notes) and, leaving out of order, can put back the
other's recorder for good (every later warning lost). `recorded()` keeps one record per
thread instead: while any thread holds one open, the process's `showwarning` hands each
warning to the record its own thread holds open (the innermost) or, from a thread holding
none, on to the `showwarning` in force before, so no other thread's warning is lost.

While any record is open, one filter leads the process's filters: "always" for the threads
that hold a record open and no other (its message pattern matches only there), as
`catch_warnings` with `simplefilter("always")` had it for the recording thread: a warning
repeated there (the same image read twice) is recorded each time, whatever the filters say.
Every other thread's warnings meet the filters they met before: an "error" filter (`-W error`)
still raises, "ignore" still drops and "default" still shows a repeat once. (A filter that
said "always" to every thread turned another thread's errors into printed lines.) Opening
the first record bumps the filters' version, so no registry holds back a warning shown once
before; a warning that another thread shows once while a record is open, from the same line,
is held back in the recording thread too (the registry is per module, not per thread).

Every catcher in the project goes through here; one that swaps the warnings state itself (a
test's `pytest.warns`, a library's `catch_warnings`) and leaves while a record is open takes
the record's hook with it, and nothing here puts back what it did not put there. One that
entered while a record was open and leaves after it closed puts the leading filter and the
hook back: both then do nothing (no thread holds a record, so the filter matches none, and
the hook hands every warning on).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_open: dict[int, list[list[warnings.WarningMessage]]] = {}  # thread id: its records, inner last
_previous: Callable[..., Any] = warnings.showwarning  # in force when the first record opened


class _Recording(Warning):
    """A category no warning has: its filter, put in by `simplefilter`, makes way for ours."""


class _InRecordingThread:
    """A filter's message pattern (the filters ask it `match(text)`) that matches in a thread
    holding a record open and in no other."""

    def match(self, text: str) -> bool:
        return threading.get_ident() in _open

    def __repr__(self) -> str:
        return "<in a thread recording its warnings>"


_ALWAYS_HERE = ("always", _InRecordingThread(), Warning, None, 0)


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: Any = None, line: str | None = None) -> None:
    records = _open.get(threading.get_ident())
    if records:
        records[-1].append(warnings.WarningMessage(message, category, filename, lineno,
                                                   file, line))
    else:
        _previous(message, category, filename, lineno, file, line)


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings raised in this thread inside the block, in a list, instead of shown."""
    global _previous
    me = threading.get_ident()
    record: list[warnings.WarningMessage] = []
    with _lock:
        if not _open:
            if warnings.showwarning is not _show:  # not _show put back by a catcher that saved it
                _previous = warnings.showwarning
            _lead_filters()
            warnings.showwarning = _show
        _open.setdefault(me, []).append(record)
    try:
        yield record
    finally:
        with _lock:
            records = _open[me]
            del records[next(i for i, r in enumerate(records) if r is record)]
            if not records:
                del _open[me]
            if not _open:
                if warnings.showwarning is _show:
                    warnings.showwarning = _previous
                if _ALWAYS_HERE in warnings.filters:
                    warnings.filters.remove(_ALWAYS_HERE)


def _lead_filters() -> None:
    """`_ALWAYS_HERE` first among the filters (once), the filters' version bumped so that no
    registry holds back a warning shown before: `simplefilter` bumps it, putting in a filter
    of a category no warning has, which ours then replaces where it stands."""
    if _ALWAYS_HERE in warnings.filters:  # put back by a catcher that saved the filters
        warnings.filters.remove(_ALWAYS_HERE)
    warnings.simplefilter("always", _Recording)
    placeholder = ("always", None, _Recording, None, 0)
    warnings.filters[warnings.filters.index(placeholder)] = _ALWAYS_HERE
