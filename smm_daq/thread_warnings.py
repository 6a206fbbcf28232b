"""Warnings recorded per thread, for code that says a library's warnings in its own words.

`warnings.catch_warnings` swaps the process's warning filters and `showwarning` on entry and
puts back what it found on exit: two threads inside it at once catch each other's warnings
(an image's damage among an inversion's notes) and, leaving out of order, can put back the
other's recorder for good (every later warning lost). `recorded()` keeps one record per
thread instead: while any thread holds one open, the process's `showwarning` hands each
warning to the record its own thread holds open (the innermost) or, from a thread holding
none, on to the `showwarning` in force before, so no other thread's warning is lost.

While any record is open an "always" filter leads the process's filters, as
`catch_warnings` with `simplefilter("always")` had it: a warning repeated in a thread (the
same image read twice) is recorded each time, and another thread's warnings are shown each
time too, never fewer. Every catcher in the project goes through here; one that swaps the
warnings state itself (a test's `pytest.warns`) and leaves while a record is open takes the
record's hook with it, and nothing here puts back what it did not put there.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_ALWAYS = ("always", None, Warning, None, 0)  # what simplefilter("always") puts first

_lock = threading.Lock()
_open: dict[int, list[list[warnings.WarningMessage]]] = {}  # thread id: its records, inner last
_previous: Callable[..., Any] = warnings.showwarning  # in force when the first record opened
_filters: list[list[tuple[object, ...]]] = [[], []]  # the filters then, and as it left them


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
            before = list(warnings.filters)
            warnings.simplefilter("always")  # bumps the filters' version: no registry holds back
            _filters[:] = [before, list(warnings.filters)]
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
                _put_back_filters()


def _put_back_filters() -> None:
    """The filters as the first record found them, unless changed since; changed, without
    the "always" filter where that record put it in. While "always" led, no warning went
    into a registry, so none holds back a warning the filters put back would show."""
    before, left = _filters
    if warnings.filters == left:
        warnings.filters[:] = before
    elif _ALWAYS not in before and _ALWAYS in warnings.filters:
        warnings.filters.remove(_ALWAYS)
