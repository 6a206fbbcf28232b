"""The MMT inversion's progress on stderr: the blocks of sensors folded into its QR.

An inversion at the lab's size runs for most of an hour on a laptop, nearly all of it in
these blocks, which cost the same each: the rate over the blocks done so far gives an honest
remaining time.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


def say(message: str) -> None:
    """The inversion's messages (what it solves, a first run's compiling) on stderr."""
    print(f"smm-daq: {message}", file=sys.stderr, flush=True)


def say_if_compiling(model: str) -> None:
    """Before the CPU kernels of grain model `model` run: say so when they compile first."""
    from smm_daq.analysis.mmt.models.compiled import first_run_notice

    notice = first_run_notice(model)
    if notice:
        say(notice)


class InversionProgress:
    """`on_block` for `invert_map` and `invert_scans`: a tqdm bar with the remaining time on a
    terminal, else a line per 10 % (logs stay readable); nothing for an inversion of a single
    block (it has no progress to show). Reports that start again from the beginning (a
    further pass over the sensors) start a new bar, labelled as such."""

    FORMAT = "{desc}: {percentage:5.1f}%|{bar}| {n_fmt}/{total_fmt} sensors, ETA {remaining}"

    def __init__(self, stream: TextIO | None = None, *,
                 label: str = "Green's matrix and QR") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self._bar: tqdm | None = None
        self._started = False
        self._t0 = 0.0
        self._first = 0
        self._decile = 0
        self._passes = 0

    def __call__(self, done: int, total: int) -> None:
        if not self._started:
            if done >= total:
                return  # one block: done as soon as it began
            self._started = True
            self._t0, self._first, self._decile = time.monotonic(), done, 0
            self._passes += 1
            if self.tty:
                self._bar = tqdm(total=total, initial=done, file=self.stream, desc=self._desc(),
                                 bar_format=self.FORMAT, dynamic_ncols=True, leave=True)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif done * 10 // total > self._decile:
            self._decile = done * 10 // total
            line = tqdm.format_meter(done, total, time.monotonic() - self._t0, ncols=80,
                                     prefix=self._desc(), initial=self._first,
                                     bar_format=self.FORMAT, ascii=True)
            self.stream.write(line + "\n")
            self.stream.flush()
        if done >= total:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._started = False

    def _desc(self) -> str:
        return self.label if self._passes == 1 else f"{self.label}, pass {self._passes}"
