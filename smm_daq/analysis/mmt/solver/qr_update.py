"""A triangular QR factor updated with blocks of new rows: R ← the R factor of [R; B].

LAPACK's dtpqrt does this update, but factors each panel of columns with level-2 reflections
(dtpqrt2), which at a few hundred to a few thousand columns take most of its time; it also
scales poorly over threads. Here each panel is factored by dgeqrt, whose recursive panel
(dgeqrt3) is level 3, applied to the dense stack [R's diagonal block; B's panel columns], and
the trailing columns are updated by dtpmqrt. Since that diagonal block is upper triangular,
the reflectors of its dense QR are zero in it apart from their unit diagonal: the pentagonal
form (l = 0) that dtpmqrt applies, so only their rows in B are passed on. It is the same
Householder QR as dtpqrt's, with the same backward stability. Both routines are called with
the GIL released (`lapack_nogil`): a thread inverting a map leaves the others running.

Measured on 2 cores (blocks of 6,144 rows, against dtpqrt with a 256-column panel): 601
columns 0.57 s against 1.60 s, 2,025 columns 1.98 s against 3.54 s, 5,626 columns 4.50 s
against 5.52 s, 12,901 columns 22.2 s against 25.6 s (one block).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from smm_daq.analysis.mmt.solver import lapack_nogil


def panel_width(n: int) -> int:
    """Columns per panel: wider panels pay off as the trailing update grows (measured, above:
    128 fastest at 601 columns, 256 at 2,025–5,626, 512 at 12,901)."""
    if n <= 1500:
        return 128
    return 256 if n <= 8000 else 512


class QRUpdate:
    """R (n × n, upper triangular, Fortran order) of all the rows added so far; starts at 0,
    or at the triangle `r` given (n × n, Fortran order; it is updated in place).

    max_rows: the most rows one `add` takes (the panel's workspace is sized for them)."""

    def __init__(self, n: int, max_rows: int, panel: int | None = None,
                 r: np.ndarray | None = None) -> None:
        if r is not None and (r.shape != (n, n) or not r.flags.f_contiguous
                              or r.dtype != np.float64):
            raise ValueError(f"r {r.dtype} {r.shape}: expected a float64 {n} × {n} triangle "
                             "in Fortran order")
        self.r = np.zeros((n, n), order="F") if r is None else r
        self.panel = max(1, min(panel or panel_width(n), n))
        self._work = np.empty((self.panel + max_rows) * self.panel)
        self._t = np.empty((self.panel, self.panel), order="F")

    def add(self, rows: np.ndarray, after_panel: Callable[[float], None] | None = None, *,
            triangular: bool = False) -> None:
        """R ← R of [R; rows]. rows (m, n), m ≤ max_rows, Fortran order: it is overwritten.

        triangular: rows is upper triangular (another triangle, merged into this one): each
        panel's reflectors then reach only its rows down to the panel's last column (the
        rest are zero there and stay so), a third of the flops of a dense block of n rows.

        after_panel, when given, is told after each panel but the last the share of this
        update's work done so far (0 to 1): one update of the lab's size is tens of panels and
        tens of seconds, and an exception it raises (a user's cancel) stops it there, R then
        left part-updated."""
        r = self.r
        m, n = rows.shape
        if n != r.shape[0] or m > self._work.size // self.panel - self.panel:
            raise ValueError(f"rows {rows.shape}: expected at most "
                             f"{self._work.size // self.panel - self.panel} rows of "
                             f"{r.shape[0]} columns")
        if rows.dtype != np.float64:
            raise ValueError(f"rows of {rows.dtype}: expected float64")
        if m == 0:
            return
        done = (np.cumsum(_panel_work(n, self.panel, m if triangular else None))
                if after_panel is not None else None)
        for p, j0 in enumerate(range(0, n, self.panel)):
            j1 = min(n, j0 + self.panel)
            w = j1 - j0
            k = min(m, j1) if triangular else m  # the rows the panel's reflectors reach
            stack = self._work[:(w + k) * w].reshape((w + k, w), order="F")
            stack[:w] = np.triu(r[j0:j1, j0:j1])
            stack[w:] = rows[:k, j0:j1]
            t = self._t[:w, :w]
            lapack_nogil.dgeqrt(stack, t)
            r[j0:j1, j0:j1] = np.triu(stack[:w])
            if j1 == n:
                break
            lapack_nogil.dtpmqrt_left_transposed(stack[w:], t, r[j0:j1, j1:], rows[:k, j1:])
            if done is not None and after_panel is not None:
                after_panel(float(done[p] / done[-1]))


def _panel_work(n: int, panel: int, triangle: int | None = None) -> np.ndarray:
    """Each panel's share of an update's flops, up to a common factor: its factorization
    (w² per row) and its reflections applied to the 2 w (n − j1) entries per row right of it,
    over all the rows, or for a triangle of that many rows those down to column j1."""
    j0 = np.arange(0, n, panel)
    w = np.minimum(panel, n - j0)
    rows = 1.0 if triangle is None else np.minimum(triangle, j0 + w)
    return rows * w * (w + 2.0 * (n - j0 - w))
