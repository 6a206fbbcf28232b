"""The MMT inversion's progress on stderr: the blocks of sensors folded into its QR, then the
merge of the CPU's two streams' triangles.

An inversion at the lab's size runs for most of an hour on a laptop, nearly all of it in
these blocks, which cost the same each: the rate over the blocks done so far gives an honest
remaining time. The merge that follows in two streams takes a minute or two more there, in
panels of unequal cost: its remaining time is reckoned from the share of its work done.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

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


class _MergeBar(tqdm):
    """A bar of the merge's share of work done that shows its panels too (`panels`): tqdm's
    documented way to a field of one's own is its `format_dict`."""

    def __init__(self, *args: Any, panels: str, **kwargs: Any) -> None:
        self.panels = panels  # before tqdm's first display
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self) -> dict:
        return {**super().format_dict, "panels": self.panels}


class InversionProgress:
    """`on_block` for `invert_map` and `invert_scans`, and `merge` their `on_merge`: a tqdm
    bar with the remaining time on a terminal, else a line per 10 % (logs stay readable);
    nothing for an inversion of a single block (it has no progress to show). Reports that
    start again from the beginning (a further pass over the sensors) start a new bar,
    labelled as such; a merge of the streams' triangles has a bar of its own, and sensors
    told after one (the next scan's, each scan folded apart) go on in a fresh bar of the same
    pass."""

    FORMAT = "{desc}: {percentage:5.1f}%|{bar}| {n_fmt}/{total_fmt} sensors, ETA {remaining}"
    MERGE_LABEL = "merging the two streams' triangles"
    MERGE_FORMAT = "{desc}: {percentage:5.1f}%|{bar}| {panels} panels, ETA {remaining}"

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
        self._interrupted = False  # a merge shown while the sensors were under way
        self._merge_bar: _MergeBar | None = None
        self._merging = False
        self._merge_t0 = 0.0
        self._merge_decile = 0

    def __call__(self, done: int, total: int) -> None:
        if not self._started:
            if done >= total:
                return  # one block: done as soon as it began
            self._started, self._decile = True, 0
            self._passes += 1
            self._begin(done, total)
        elif self._interrupted:
            self._begin(done, total)
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

    def _begin(self, done: int, total: int) -> None:
        """The sensors' bar (on a terminal) and remaining time begun at `done`."""
        self._t0, self._first, self._interrupted = time.monotonic(), done, False
        if self.tty:
            self._bar = tqdm(total=total, initial=done, file=self.stream, desc=self._desc(),
                             bar_format=self.FORMAT, dynamic_ncols=True, leave=True)

    def merge(self, done: int, total: int, share: float) -> None:
        """The streams' merge: `done` panels of `total`, `share` of its work (0 to 1)."""
        panels = f"{done}/{total}"
        if not self._merging:
            if done >= total:
                return  # as for one block
            self._merging, self._merge_decile = True, 0
            self._merge_t0 = time.monotonic()
            if self._started and self._bar is not None:  # a scan's merge, others to come
                self._bar.close()
                self._bar = None
            self._interrupted = self._started
            if self.tty:
                self._merge_bar = _MergeBar(total=1.0, file=self.stream, desc=self.MERGE_LABEL,
                                            bar_format=self.MERGE_FORMAT, dynamic_ncols=True,
                                            leave=True, panels=panels)
        if self._merge_bar is not None:
            self._merge_bar.panels = panels
            self._merge_bar.update(share - self._merge_bar.n)
        elif int(share * 10) > self._merge_decile:
            self._merge_decile = int(share * 10)
            line = tqdm.format_meter(share, 1.0, time.monotonic() - self._merge_t0, ncols=80,
                                     prefix=self.MERGE_LABEL, bar_format=self.MERGE_FORMAT,
                                     ascii=True, panels=panels)
            self.stream.write(line + "\n")
            self.stream.flush()
        if done >= total:
            if self._merge_bar is not None:
                self._merge_bar.close()
                self._merge_bar = None
            self._merging = False

    def _desc(self) -> str:
        return self.label if self._passes == 1 else f"{self.label}, pass {self._passes}"
