"""What a running scan tells its subscribers (the command line, the GUI, a script)."""

from __future__ import annotations

from dataclasses import dataclass

EVENT_KINDS = ("started", "point", "line_done", "paused", "resumed", "made_safe", "finished",
               "failed", "aborted")


@dataclass(frozen=True)
class ScanEvent:
    """One step of a scan, published by the sequencer from its worker thread.

    kind: "started" (field set, first move next), "point" (one reading stored in memory),
        "line_done" (a line written and flushed to the file; its message, when not empty,
        warns of the ambient field's drift, as the fluxgate read at the line's end tells it
        (`ambient_drift`)), "paused" (message says why:
        operator request, lock-in overload, reading out of range), "resumed", "made_safe" (the
        rig has been made safe, on an abort during a write to the file or at the scan's end,
        and that write, which the message names, has not returned yet: a stalled disk holds
        the end of the scan, which follows once the write returns; told again for a later
        write that stalls too), and exactly one of "finished", "failed" (message
        says what failed), "aborted" at the end, sent after the rig has been made safe and the
        file closed.
    entry: the scan's entry name. line: the line index iy (the current or last line), from 0;
        shown to people as iy + 1, as every message counts lines.
    index: (iy, ix) of the point for "point" events, else None.
    bz: the point's Bz in T for "point" events, else None.
    progress: fraction of the grid's points measured (0..1), counting lines finished before a
        resume. eta_s: estimated remaining time in clock seconds (simulated seconds on a
        simulator), or None when unknown. time: the rig clock's time (s).
    rig_safe: for "made_safe" and the final event, whether making the rig safe did every step
        (False: the message says what it could not do); None for the other kinds.
    """

    kind: str
    entry: str
    line: int
    index: tuple[int, int] | None = None
    bz: float | None = None
    message: str = ""
    progress: float = 0.0
    eta_s: float | None = None
    time: float = 0.0
    rig_safe: bool | None = None
