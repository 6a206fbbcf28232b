"""The runs of a scan entry (its start, then each resume) as the entry records them, read from
an open entry group so that a listing of every entry (`list_entries`) reads them in its one
open of the file; `smm_daq.storage.scan_entry` writes them (`runs`, the field-check log)."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.strings import text


@dataclass(frozen=True)
class RunStart:
    """One run of a scan (its start, or a resume) as its entry records it."""

    run: int  # 0 the start, k the k-th resume
    start_time: str  # ISO 8601; "" not recorded (an entry of an earlier version)
    time_offset: float  # s on data/time's clock; NaN not recorded


def runs_of(g: h5py.Group, where: str) -> list[RunStart]:
    """The runs of scan entry `g`: from `runs`, or for an entry of an earlier version from
    its field-check log (their starts unrecorded), or one run when it has neither. A row of
    `runs` that not every column holds, or whose run was never written (a resume killed while
    it added its row), is left out: the next resume writes its row after it. InputError,
    naming `where`, when `runs` is malformed."""
    runs = g.get("runs")
    try:
        if isinstance(runs, h5py.Group):
            columns = [np.asarray(runs[k][()]).reshape(-1)
                       for k in ("run", "start_time", "time_offset")]
            rows = min(len(c) for c in columns)
            numbers, starts, offsets = (c[:rows] for c in columns)
            return [RunStart(int(n), text(s), float(o))
                    for n, s, o in zip(numbers, starts, offsets, strict=True) if n >= 0]
        log = g.get("instrument/field_check/value_log/run")
        numbers = (np.asarray(log[()], dtype=int).reshape(-1)
                   if isinstance(log, h5py.Dataset) else np.zeros(1, int))
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"'runs' is malformed ({exc}); expected run, start_time, "
                         "start_epoch and time_offset, one row per run", source=where) from None
    return [RunStart(int(n), "", float("nan")) for n in numbers]
