"""The CPU's QR of [Q | φ] folded in two streams: each of two threads computes the rows of
alternate blocks of sensors and folds them into a triangle of its own, with half the cores for
its numba kernels and its LAPACK calls; the two triangles are then merged by one more update
(the second folded into the first; a narrow merge at one stream's BLAS threads,
NARROW_MERGE_COLUMNS). It is the
same Householder QR: R of the stacked rows is unique up to the signs of its rows, which
`accumulate` makes those of a diagonal ≥ 0.

Why: both the Green's kernels and OpenBLAS's panels of the QR scale poorly over threads at
these sizes (the QR update of 40,401 × 601 in blocks of 6,144 rows: 1.05 s on 2 threads at
1.78 cores busy, 1.3 s on one), and the parallel kernels leave a core idle as they start and
end. Two streams at one thread each keep both cores on work that runs at one thread's
efficiency. Each stream's blocks have half the rows of one stream's (`stream_block`), so the
cost is one more triangle held (`memory.solve_bytes`: 1.3 GB at the lab's 12,901 columns),
which is why a machine without that memory to spare folds in one.

When (`stream_count`): measured on 2 cores (the QR alone, `QRUpdate` over random rows as
many as take seconds, best of 5 or more of wall and of CPU seconds; the merge timed apart,
folding the triangle as one), two streams were faster at every width and used less CPU:
    columns  rows (blocks: one | two)  one stream    two streams   merge          load
    601      24,576 (6,144 | 6,144)    0.45 / 0.90   0.38 / 0.72   0.01 / 0.02    2-3
    601      24,576 (6,144 | 3,072)    14.4 / 5.3    1.75 / 0.73   0.29 / 0.13    7-8
    2,025    24,576 (6,144 | 3,072)    11.8 / 14.1   4.5 / 6.2     0.43 / 0.57    4-6
    5,626    2,048 (1,024 | 512)       30.6 / 12.9   11.9 / 4.7    26 / 12 (2×)   7
    12,900   1,024 (512 | 256)         49.0 / 27.3   33.9 / 20.4   98 / 74 (1×)   5-7
Other sessions shared the 2 cores (the load): OpenBLAS at two threads then loses most, each
panel waiting for both its threads, and the streams at one thread each little; quiet, the
gain is nearer the first row's. Short blocks count against the streams (the triangle's part
of each panel's update is panel / (4 × block) of a row's flops: half at 256 rows and 12,900
columns, 2 % at the lab's 3,055). The Green's rows, which the streams also build at one
thread each, are a shrinking share of the fold as the columns grow (CPU time a row, blocks
of 6,144: the medium cuboid preset 4.5 µs against the QR's 29 µs, paper-largest 29 µs
against about 2,000, the lab-size dipoles 37 µs against about 10,000). The merge folds the
second triangle into the first (`QRUpdate.add(triangular=True)`: each panel's reflectors
reach its rows down to the panel's last column only; folded as a dense block it took 2.6 s
against 1.7 at 2,025 columns, 115 s against 26 at 5,626), as much work as n/3 rows at two
threads; with the least gain measured (the first row's 0.45 against 0.38 s: g = 0.16 of each
row's time) it pays back over n/(3 g) ≈ 2.1 n rows, hence at least MERGE_ROWS_PER_COLUMN = 3
rows a column (the presets have 45 to 112; at the lab's size the merge is 0.6 % of the rows).
No cap on the columns remains: it was set at 1,500 without measuring above 601.

The calling thread only reports: each stream tells it of its rows folded (after each block and
within one after each panel of its QR), and it calls `report` with their sum, so a report that
raises (a user's cancel) is raised in the caller's thread, and the streams stop at their next
panel. The merge, run in the caller's thread once every row is folded, is a stage of its own
(45 to 100 s at the lab's size on 2 cores): `merging` is told its panels and its share of the
work done, from 0 as it begins. The kernels (`GreenModel`, `MultipoleModel`) release the GIL
(numba's nogil) and LAPACK is called without it (`lapack_nogil`), so the streams run at once.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np
from threadpoolctl import OpenBLASController, ThreadpoolController

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver.qr_update import QRUpdate

STREAMS = 2
# the merge (`fold`: the second triangle folded into the first, at most a third of the work of
# folding as many rows as columns, `QRUpdate.add(triangular=True)`) pays back only over this
# many rows a column: at the least gain measured (module docstring)
MERGE_ROWS_PER_COLUMN = 3
# the merge of triangles of at most this many columns runs at a stream's BLAS threads, wider
# ones at all of them: a narrow merge's panels are too short for OpenBLAS's threads to pay for
# waking and waiting for each other. `_merge` of two triangles of n columns, 2 cores loaded 4
# to 7 deep by other work, best of 5 to 9, ms of wall (of CPU) at one BLAS thread against two:
#     n = 91: 0.6 (0.6) against 3.4 (3.4); 601: 39 (12) against 140 (54); 1,201: 139 (58)
#     against 665 (244); 2,026: 317 (236) against 961 (533); 3,000: 1,443 (643) against 8,737
# and quiet at two threads (the table above) 10 ms at 601 columns and 430 at 2,025: one thread
# was as fast at 601 (11 ms, lightly loaded) and faster at 2,026 even loaded. Wider merges keep
# every thread (at the lab's size the merge takes a minute): not measured quiet at one.
NARROW_MERGE_COLUMNS = 2048
# numba's threading layers that take kernels launched from several threads at once (its
# workqueue layer aborts the process on that)
THREADSAFE_LAYERS = ("omp", "tbb")

# BLAS's thread limit is the process's: folds running at once (inversions in threads of one
# process: a threaded Dask worker's samples, a script's) share one limit, the most threads any
# of them asks, restored by the last to what the first found
_limit_lock = threading.Lock()
_limits_held: list[int] = []  # the threads each limit in force asked for
_limit: Any = None  # threadpoolctl's limiter of the first, while any is in force
# the BLAS libraries the limit is set on, found once: threadpoolctl's search of the loaded
# libraries took 1.4 to 2.5 ms a fold (3 % of a small inversion), setting the limit on
# those it found 0.02 ms; OpenBLAS is loaded by NumPy and SciPy's LAPACK (`lapack_nogil`)
# before any fold
_controller: ThreadpoolController | None = None

# fill(stream, block index, rows): the rows of one block (size × columns, Fortran order)
Fill = Callable[[int, int, np.ndarray], None]
# merging(panels done, panels in all, share of the merge's work done, 0 to 1): told as the
# streams' triangles are merged, before the first panel and after each; the share counts each
# panel's flops (the middle ones have several times the first's), for a remaining time
MergeProgress = Callable[[int, int, float], None]


class _Stopped(Exception):
    """A stream told to stop (the caller's report raised, or the other stream failed)."""


def stream_count(n_columns: int, rows: int, block: int, kept: float = 0) -> int:
    """STREAMS where there are the rows for at least that many blocks of `block` and for the
    merge to pay (MERGE_ROWS_PER_COLUMN), the cores and memory for them (`stream_block`'s
    blocks, `memory.solve_bytes`, and the most bytes of Q's blocks the fold keeps besides,
    `kept`: they are held with the streams' blocks and triangles, where one stream's count
    has a block to spare once its R is copied) and a numba threading layer safe from
    several threads, else 1. n_columns counts φ's."""
    if (rows <= block or rows < MERGE_ROWS_PER_COLUMN * n_columns
            or numba.get_num_threads() < STREAMS or not _threadsafe_layer()):
        return 1
    have = memory.available_bytes()
    if have is not None and memory.solve_bytes(n_columns - 1, stream_block(block, STREAMS),
                                               streams=STREAMS) + kept > have:
        return 1
    return STREAMS


def stream_block(block: int, streams: int) -> int:
    """The most rows of a block in `streams` streams: together they hold one stream's block
    of rows, so that the second triangle is all the memory a second stream adds."""
    return max(1, block // streams)


def _threadsafe_layer() -> bool:
    """Whether numba's threading layer (started here if no kernel has run yet) is one of
    THREADSAFE_LAYERS; False where that cannot be told."""
    try:
        numba.np.ufunc.parallel._launch_threads()
        return numba.threading_layer() in THREADSAFE_LAYERS
    except (AttributeError, ValueError):
        return False


def plan(total: int, block: int, streams: int) -> tuple[list[int], list[int], list[int]]:
    """Starts, sizes and streams of the blocks of `total` sensors, in the sensors' order: in
    one stream, blocks of `block` sensors and a short last one; in more, the fewest blocks of
    at most `stream_block` sensors whose number is a multiple of `streams`, of equal sizes
    (within one sensor), dealt to the streams in turn, so that they have equal work and end
    together."""
    if streams == 1:
        starts = list(range(0, total, block))
        return starts, [min(block, total - s) for s in starts], [0] * len(starts)
    count = streams * -(-total // (stream_block(block, streams) * streams))
    cuts = [total * i // count for i in range(count + 1)]
    return (cuts[:-1], [b - a for a, b in itertools.pairwise(cuts)],
            [i % streams for i in range(count)])


def fold(columns: int, sizes: Sequence[int], owners: Sequence[int], fill: Fill,
         report: Callable[[int], None] | None,
         merging: MergeProgress | None = None) -> np.ndarray:
    """R (columns × columns, Fortran order, upper triangular, diagonal of either sign) of the
    blocks' rows stacked in order, block b of sizes[b] rows filled by `fill` in stream
    owners[b] (`plan`); `report` told the rows folded so far (after each block, and within
    one after each panel of its QR), then `merging` the merge's progress (`_merge`), in the
    calling thread, where one stream runs too."""
    block_rows = max(sizes)
    streams = max(owners) + 1
    if streams == 1:
        return _stream(0, columns, block_rows, range(len(sizes)), sizes, fill, report,
                       None).r
    share = max(1, numba.get_num_threads() // streams)
    told: queue.SimpleQueue[tuple[int, int | BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()
    triangles: list[QRUpdate | None] = [None] * streams

    def run(i: int) -> None:
        numba.set_num_threads(share)  # the thread's own (numba's setting is per thread)
        try:
            mine = [b for b, owner in enumerate(owners) if owner == i]
            triangles[i] = _stream(i, columns, block_rows, mine, sizes, fill,
                                   lambda done: told.put((i, done)), stop)
            told.put((i, None))
        except BaseException as exc:  # raised again in the caller's thread
            told.put((i, exc))

    threads = [threading.Thread(target=run, args=(i,), name=f"mmt-qr-stream-{i}", daemon=True)
               for i in range(streams)]
    with blas_limited(share):
        try:
            for thread in threads:
                thread.start()
            _relay(told, streams, report)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        folded = [triangle.r for triangle in triangles if triangle is not None]
        assert len(folded) == streams
        if columns <= NARROW_MERGE_COLUMNS:  # at a stream's threads (NARROW_MERGE_COLUMNS)
            return _merge(folded, merging)
    return _merge(folded, merging)


def _merge(triangles: Sequence[np.ndarray], merging: MergeProgress | None) -> np.ndarray:
    """The first triangle with the others folded into it (the stacked rows [R₀; R₁; …]);
    `merging` told before the first panel and after each (each as long as a block at the
    lab's size: a chance to cancel), the panels and the shares of all the merges together."""
    merge = QRUpdate(triangles[0].shape[0], triangles[0].shape[0], r=triangles[0])
    panels = -(-triangles[0].shape[0] // merge.panel)
    merges = len(triangles) - 1
    if merging is not None:
        merging(0, merges * panels, 0.0)
    for i, other in enumerate(triangles[1:]):
        after = None if merging is None else _merge_panels(merging, i, merges, panels)
        merge.add(other, after, triangular=True)
        if merging is not None:  # the last panel, which `add` does not report
            merging((i + 1) * panels, merges * panels, (i + 1) / merges)
    return merge.r


def _merge_panels(merging: MergeProgress, i: int, merges: int, panels: int
                  ) -> Callable[[float], None]:
    """The after_panel of merge i (of `merges`, `panels` each) told to `merging` as the panels
    and the share of all the merges done."""
    done = itertools.count(i * panels + 1)
    return lambda share: merging(next(done), merges * panels, (i + share) / merges)


@contextmanager
def blas_limited(threads: int) -> Iterator[None]:
    """BLAS limited to `threads` while any fold in streams (or other work limited so: a
    model's build, `inversion.build_model`) runs; where they overlap, to the most threads
    any of them asks (a build's one never holds a fold on a larger machine to it), and what
    BLAS had before the first is restored when the last ends (each restoring what it found
    would leave the limit of the one begun second once they overlap).

    The limit is the process's (OpenBLAS's thread count), so the other threads' BLAS calls
    run at it too meanwhile. That is harmless: the rig's thread solves 3 × 3 systems (coil
    currents for a field, 5.3 µs at one thread or two: OpenBLAS threads no call that small),
    and the largest the window makes, a plane background fitted to the 733,221 pixels of a
    lab-size map (a least squares of 733,221 × 3), took 170–178 ms at one thread against
    195–206 ms at two (2 cores, loaded); the streams keep every core busy, so a second BLAS
    thread would only take its time from them. numba's thread count is set in the streams'
    own threads only (it is per thread)."""
    global _controller, _limit
    with _limit_lock:
        if _controller is None:
            _controller = ThreadpoolController()
        if not _limits_held:
            _limit = _controlling(lambda: _controller.limit(limits=threads, user_api="blas"))
        elif threads > max(_limits_held):
            _controlling(lambda: _controller.limit(limits=threads, user_api="blas"))
        _limits_held.append(threads)
    try:
        yield
    finally:
        with _limit_lock:
            most = max(_limits_held)
            _limits_held.remove(threads)
            if not _limits_held:
                _controlling(_limit.restore_original_limits)
                _limit = None
            elif max(_limits_held) < most:
                left = max(_limits_held)
                _controlling(lambda: _controller.limit(limits=left, user_api="blas"))


def _controlling(change: Callable[[], Any]) -> Any:
    """change() of BLAS's threads made from this thread, whichever set them before.
    threadpoolctl (from 3.8, OpenBLAS on pthreads) lets only the first thread that set
    OpenBLAS's threads set them while it lives, silently ignoring the others; a limit here is
    raised, lowered and restored by whichever thread's limit begins or ends (under
    `_limit_lock`), so without this a fold's raise was lost where a build in another thread
    had set the limit, and the last to end left BLAS at the limit for the rest of the
    process. Control is given up after, for the next thread's limits and threadpoolctl's
    own."""
    clear = getattr(OpenBLASController, "clear_controlling_thread", None)  # threadpoolctl 3.8
    if clear is not None:
        clear(force=True)
    try:
        return change()
    finally:
        if clear is not None:
            clear()


def _relay(told: queue.SimpleQueue, streams: int, report: Callable[[int], None] | None
           ) -> None:
    """Report the streams' rows folded as they tell them, until all are done; an exception a
    stream raised is raised here."""
    done = [0] * streams
    running = streams
    while running:
        i, value = told.get()
        if value is None:
            running -= 1
        elif isinstance(value, BaseException):
            raise value
        else:
            done[i] = value
            if report is not None:
                report(sum(done))


def _stream(index: int, columns: int, block_rows: int, blocks: Sequence[int],
            sizes: Sequence[int], fill: Fill, report: Callable[[int], None] | None,
            stop: threading.Event | None) -> QRUpdate:
    """The triangle of the blocks `blocks`, told to `report` as rows folded; `stop`, when set,
    ends it at the next block or panel (`_Stopped`)."""
    qr = QRUpdate(columns, block_rows)
    # one buffer, whose first size × columns doubles are each block's rows in Fortran order:
    # a short last block is then contiguous too, which LAPACK's wrappers would otherwise copy
    buf = np.empty(block_rows * columns)
    folded = 0
    for b in blocks:
        if stop is not None and stop.is_set():
            raise _Stopped
        size = sizes[b]
        rows = buf[:size * columns].reshape((size, columns), order="F")
        fill(index, b, rows)
        qr.add(rows, _within_block(report, stop, folded, size))
        folded += size
        if report is not None:
            report(folded)
    return qr


def _within_block(report: Callable[[int], None] | None, stop: threading.Event | None,
                  folded: int, size: int) -> Callable[[float], None] | None:
    """The QR's report after each panel of a block, as rows folded: progress and a chance to
    cancel every second or so, not only between blocks (tens of seconds each at the lab's
    size)."""
    if report is None and stop is None:
        return None

    def after_panel(share: float) -> None:
        if stop is not None and stop.is_set():
            raise _Stopped
        if report is not None:
            report(folded + int(size * share))

    return after_panel
