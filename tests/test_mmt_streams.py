"""The CPU's QR folded in two streams (`streams.fold`): the same triangle as one stream's, its
progress told in the caller's thread and summed over the streams, a cancel or a failure in
either stream stopping both, the kernels the streams run releasing the GIL, and the second
stream taken only where there are the blocks, cores and memory for it."""

from __future__ import annotations

import itertools
import threading

import numba
import numpy as np
import pytest
import threadpoolctl
from scipy import sparse

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models import cuboid, multipole
from smm_daq.analysis.mmt.models.compiled import _top_level_kernels
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import joint as joint_solver
from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.analysis.mmt.solver.inversion import accumulate, invert_map, sensor_positions

UM = 1e-6
# numba's workqueue layer aborts the process on kernels launched from two threads at once (the
# inversion folds in one stream there, `stream_count`): the tests that run them need another
kernels_in_two_streams = pytest.mark.skipif(
    not qr_streams._threadsafe_layer(),
    reason=f"numba's {numba.threading_layer()} layer takes kernels from one thread at a time")


class Stop(Exception):
    pass


def _blocks(streams: int = 2, total: int = 430, block: int = 60, columns: int = 25):
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((total, columns))
    starts, sizes, owners = qr_streams.plan(total, block, streams)

    def fill(stream: int, b: int, out: np.ndarray) -> None:
        assert stream == owners[b]
        out[...] = rows[starts[b]:starts[b] + sizes[b]]

    return rows, sizes, owners, fill


def _positive(r: np.ndarray) -> np.ndarray:
    return r * np.where(np.diag(r) < 0, -1.0, 1.0)[:, None]


def _no_stream_left() -> bool:
    return not any(t.name.startswith("mmt-qr-stream") for t in threading.enumerate())


@pytest.mark.parametrize("streams", [2, 3])
def test_the_streams_fold_the_triangle_of_all_the_rows(streams):
    rows, sizes, owners, fill = _blocks(1)
    one = _positive(qr_streams.fold(rows.shape[1], sizes, owners, fill, None))
    rows, sizes, owners, fill = _blocks(streams)
    several = _positive(qr_streams.fold(rows.shape[1], sizes, owners, fill, None))
    referee = _positive(np.linalg.qr(rows, mode="r"))
    np.testing.assert_allclose(several, referee, rtol=0, atol=1e-12 * np.abs(referee).max())
    np.testing.assert_allclose(several, one, rtol=0, atol=1e-12 * np.abs(referee).max())


def test_the_rows_folded_are_told_in_the_callers_thread_summed_over_the_streams():
    rows, sizes, owners, fill = _blocks()
    told: list[tuple[int, int]] = []
    qr_streams.fold(rows.shape[1], sizes, owners, fill,
                    lambda done: told.append((done, threading.get_ident())))
    done = [d for d, _ in told]
    assert {ident for _, ident in told} == {threading.get_ident()}
    assert done == sorted(done) and done[-1] == rows.shape[0]
    assert len(done) == len(sizes)  # one report a block (a single panel each)


def test_a_report_that_raises_stops_both_streams():
    rows, sizes, owners, fill = _blocks()
    told: list[int] = []

    def cancel_at_the_second(done: int) -> None:
        told.append(done)
        if len(told) == 2:
            raise Stop

    with pytest.raises(Stop):
        qr_streams.fold(rows.shape[1], sizes, owners, fill, cancel_at_the_second)
    assert len(told) == 2  # nothing told after the report that raised
    assert _no_stream_left()


def test_the_merge_of_the_triangles_is_told_as_its_own_stage_and_may_be_stopped():
    """At the lab's size the merge is a minute or two after the last block: it is told apart
    from the rows, from 0 as it begins then after each panel, its share of the work never
    going back, and a report that raises (a cancel) stops it."""
    rows, sizes, owners, fill = _blocks(columns=300)  # three panels
    told: list[tuple[str, int, int, float]] = []
    qr_streams.fold(rows.shape[1], sizes, owners, fill,
                    lambda done: told.append(("rows", done, rows.shape[0], 0.0)),
                    lambda done, total, share: told.append(("merge", done, total, share)))
    merge = [t for t in told if t[0] == "merge"]
    assert told[-len(merge):] == merge  # after every row
    assert [(done, total) for _, done, total, _ in merge] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    shares = [share for *_, share in merge]
    assert shares[0] == 0 and shares[-1] == 1
    assert all(a < b for a, b in itertools.pairwise(shares))

    def cancel_in_the_merge(done: int, total: int, share: float) -> None:
        if done == 1:
            raise Stop

    with pytest.raises(Stop):
        qr_streams.fold(rows.shape[1], sizes, owners, fill, None, cancel_in_the_merge)


def test_a_failing_stream_raises_in_the_caller_and_stops_the_other():
    rows, sizes, owners, fill = _blocks()

    def fill_failing(stream: int, b: int, out: np.ndarray) -> None:
        if b == 3:
            raise MemoryError("block 3")
        fill(stream, b, out)

    with pytest.raises(MemoryError, match="block 3"):
        qr_streams.fold(rows.shape[1], sizes, owners, fill_failing, None)
    assert _no_stream_left()


def test_the_streams_get_equal_blocks_of_their_share_of_the_block_in_turn():
    """In two streams, blocks of at most half the block: the two hold one stream's rows."""
    assert qr_streams.plan(430, 60, 1) == ([0, 60, 120, 180, 240, 300, 360, 420],
                                           [60] * 7 + [10], [0] * 8)
    starts, sizes, owners = qr_streams.plan(430, 120, 2)
    assert sizes == [53, 54, 54, 54, 53, 54, 54, 54] and owners == [0, 1] * 4
    assert starts == [0, 53, 107, 161, 215, 268, 322, 376]
    assert qr_streams.plan(120, 120, 2) == ([0, 60], [60, 60], [0, 1])
    assert max(qr_streams.plan(733_221, 6144, 2)[1]) <= 3072


@pytest.fixture
def threadsafe(monkeypatch):
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")  # as on any layer safe


def _memory(monkeypatch, have: int | None) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: have)


def _two_streams_need(columns: int, block: int) -> int:
    """What two streams hold, in blocks of half the block each."""
    return memory.solve_bytes(columns - 1, block // 2, streams=2)


def test_a_second_stream_only_with_the_blocks_cores_and_memory_for_it(monkeypatch, threadsafe):
    n, block, rows = 601, 6144, 40_401
    need = _two_streams_need(n, block)
    assert need >= 8 * 2 * (n * n + block // 2 * n)  # two triangles, two blocks of half
    _memory(monkeypatch, need)
    assert qr_streams.stream_count(n, rows, block) == 2
    assert qr_streams.stream_count(n, block, block) == 1  # one block
    _memory(monkeypatch, need - 1)
    assert qr_streams.stream_count(n, rows, block) == 1
    _memory(monkeypatch, need)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert qr_streams.stream_count(n, rows, block) == 1
    finally:
        numba.set_num_threads(threads)
    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")  # not thread-safe
    assert qr_streams.stream_count(n, rows, block) == 1


@pytest.mark.parametrize("columns, sensors", [(2026, 301 ** 2), (5626, 501 ** 2),
                                              (12_901, 951 * 771)])
def test_wide_folds_take_two_streams_too(monkeypatch, threadsafe, columns, sensors):
    """The large, paper-largest and lab-size presets' columns (φ's too) and sensors: above
    the 1,500 columns two streams were once limited to."""
    _memory(monkeypatch, _two_streams_need(columns, 6144))
    assert qr_streams.stream_count(columns, sensors, 6144) == 2
    _memory(monkeypatch, _two_streams_need(columns, 6144) - 1)
    assert qr_streams.stream_count(columns, sensors, 6144) == 1


def test_the_lab_size_in_two_streams_fits_4_gb_by_the_solvers_accounting(monkeypatch,
                                                                          threadsafe):
    """951 × 771 sensors, 4,300 grains (12,900 unknowns): the second triangle (1.3 GB) is
    counted, and its blocks of half the rows keep the whole within 4 GB, as one stream's."""
    columns, sensors, block = 12_901, 951 * 771, 6144
    _memory(monkeypatch, 4 * 10**9)
    assert qr_streams.stream_count(columns, sensors, block) == 2
    rows = max(qr_streams.plan(sensors, block, 2)[1])
    need = memory.solve_bytes(columns - 1, rows, streams=2)
    assert need >= 8 * 2 * (columns ** 2 + rows * columns)  # two triangles, two blocks
    assert need <= 4 * 10**9


def test_two_streams_only_with_the_rows_for_their_merge_to_pay(monkeypatch, threadsafe):
    """The merge costs up to a third of folding as many rows as columns: two streams need 3
    rows a column (MERGE_ROWS_PER_COLUMN)."""
    _memory(monkeypatch, None)
    columns = 12_901
    least = 3 * columns
    assert qr_streams.stream_count(columns, least, 6144) == 2
    assert qr_streams.stream_count(columns, least - 1, 6144) == 1


def test_the_kernels_the_streams_run_release_the_gil():
    kernels = _top_level_kernels(cuboid) + _top_level_kernels(multipole)
    assert kernels
    assert [k.__name__ for k in kernels if not k.targetoptions.get("nogil")] == []


@kernels_in_two_streams
def test_an_inversion_folds_the_same_triangle_and_keeps_the_same_parts_in_two_streams():
    rng = np.random.default_rng(2)
    sample = synth.make_sample((30 * UM, 30 * UM), 15 * UM, 4e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0.0, 0.0), noise=5e-9,
                      rng=rng)
    sensors, keep = sensor_positions(data, 1 * UM)
    phi = data.bz.ravel()[keep]
    model = GreenModel.build(sample.grains, (0.0, 0.0), sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), 1 * UM)
    whole = sensors.shape[0] * model.n_columns * 8
    for budget in (whole, whole - 1):  # the rows kept, or the sparse near parts
        one, kept_one = accumulate(model, sensors, phi, block=200, keep_bytes=budget,
                                   streams=1)
        two, kept_two = accumulate(model, sensors, phi, block=200, keep_bytes=budget,
                                   streams=2)
        scale = np.abs(one.r).max()
        np.testing.assert_allclose(two.r, one.r, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(two.c, one.c, rtol=0, atol=1e-12 * np.abs(one.c).max())
        assert kept_one is not None and kept_two is not None
        assert len(kept_one) == 5 and len(kept_two) == 10  # blocks of at most 100
        kinds = {type(part) for _, _, part in kept_one + kept_two}
        assert kinds == ({np.ndarray} if budget == whole else {sparse.bsr_matrix})
        one_map = np.vstack([_dense(part) for _, _, part in kept_one])
        two_map = np.vstack([_dense(part) for _, _, part in kept_two])
        np.testing.assert_array_equal(one_map, two_map)
        assert [start for start, _, _ in kept_two] == qr_streams.plan(data.bz.size, 200, 2)[0]


def _dense(part) -> np.ndarray:
    return part if isinstance(part, np.ndarray) else part.toarray()


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def _in_a_thread(call):
    """call() in a thread of its own (OpenBLAS ignores the limits other threads set once the
    main thread has set one: the folds and the limits here are all set outside it)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    thread.join()
    return out[0]


def _both_at_two_blas_threads(first, second) -> tuple[list[int], list[int]]:
    """Runs first() and second() in threads of their own while BLAS has two threads (as a
    process has on 2 cores; the tests run one): BLAS's threads before and after them."""
    two = _in_a_thread(lambda: threadpoolctl.threadpool_limits(2, user_api="blas"))
    try:
        before = _in_a_thread(_blas_threads)
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return before, _in_a_thread(_blas_threads)
    finally:
        _in_a_thread(two.restore_original_limits)


def test_overlapping_folds_leave_blas_its_threads():
    """Two inversions folding in streams at once in threads of one process, the second begun
    after the first and ended after it: BLAS is given back the threads it had before the
    first."""
    rows, sizes, owners, fill = _blocks()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def fill_first(stream: int, b: int, out: np.ndarray) -> None:
        first_in.set()  # the first fold has limited BLAS
        assert second_in.wait(30)
        fill(stream, b, out)

    def fill_second(stream: int, b: int, out: np.ndarray) -> None:
        second_in.set()  # the second too, while the first runs
        assert first_out.wait(30)
        fill(stream, b, out)

    def first() -> None:
        try:
            qr_streams.fold(rows.shape[1], sizes, owners, fill_first, None)
        except BaseException as exc:  # failed below
            failed.append(exc)
        finally:
            first_out.set()

    def second() -> None:
        try:
            assert first_in.wait(30)
            qr_streams.fold(rows.shape[1], sizes, owners, fill_second, None)
        except BaseException as exc:  # failed below
            failed.append(exc)

    before, after = _both_at_two_blas_threads(first, second)
    assert not failed
    assert before and after == before


def test_a_second_stream_only_with_the_memory_for_what_the_fold_keeps_too(monkeypatch,
                                                                          threadsafe):
    """What `accumulate` keeps of Q's blocks (up to its keep_bytes) is held beside the two
    streams' triangles and blocks: where it does not fit with them, one stream (whose R and
    copy leave a block's room for it)."""
    n, block, rows, kept = 601, 6144, 40_401, 256 * 2**20
    need = _two_streams_need(n, block)
    _memory(monkeypatch, need + kept)
    assert qr_streams.stream_count(n, rows, block, kept=kept) == 2
    _memory(monkeypatch, need + kept - 1)
    assert qr_streams.stream_count(n, rows, block, kept=kept) == 1


class _Planned(Exception):
    pass


def test_an_inversion_counts_what_it_keeps_when_it_takes_a_second_stream(monkeypatch,
                                                                         threadsafe):
    rng = np.random.default_rng(2)
    sample = synth.make_sample((30 * UM, 30 * UM), 15 * UM, 4e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0.0, 0.0), noise=5e-9,
                      rng=rng)
    sensors, keep = sensor_positions(data, 1 * UM)
    model = GreenModel.build(sample.grains, (0.0, 0.0), sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), 1 * UM)
    whole = sensors.shape[0] * model.n_columns * 8  # all of Q's rows kept
    need = _two_streams_need(model.n_columns + 1, 200)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    planned: list[int] = []

    def plan(total: int, block: int, streams: int):
        planned.append(streams)
        raise _Planned  # the streams chosen; nothing folded

    monkeypatch.setattr(qr_streams, "plan", plan)
    for have in (need + whole, need + whole - 1):
        _memory(monkeypatch, have)
        with pytest.raises(_Planned):
            accumulate(model, sensors, data.bz.ravel()[keep], block=200, keep_bytes=whole)
    assert planned == [2, 1]


def test_the_blas_libraries_are_searched_once_not_at_every_fold(monkeypatch):
    """threadpoolctl's search of the loaded libraries took milliseconds a fold (3 % of a small
    inversion): the libraries it finds are kept, and each fold only sets their limit."""
    built: list[threadpoolctl.ThreadpoolController] = []

    class Counted(threadpoolctl.ThreadpoolController):
        def __init__(self) -> None:
            super().__init__()
            built.append(self)

    monkeypatch.setattr(qr_streams, "_controller", None)
    monkeypatch.setattr(qr_streams, "ThreadpoolController", Counted)
    rows, sizes, owners, fill = _blocks()
    for _ in range(3):
        _in_a_thread(lambda: qr_streams.fold(rows.shape[1], sizes, owners, fill, None))
    assert len(built) == 1


@pytest.mark.parametrize("narrow", [True, False])
def test_a_narrow_merge_keeps_a_streams_blas_threads_and_a_wide_one_has_them_all(
        monkeypatch, narrow):
    """OpenBLAS's threads cost a narrow merge more than they gain (its panels are short): it
    runs at the BLAS threads of one stream, a wide one at all of them."""
    rows, sizes, owners, fill = _blocks()
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)  # a stream's share: one
    monkeypatch.setattr(qr_streams, "NARROW_MERGE_COLUMNS",
                        rows.shape[1] if narrow else rows.shape[1] - 1)
    during: list[list[int]] = []
    two = _in_a_thread(lambda: threadpoolctl.threadpool_limits(2, user_api="blas"))
    try:
        before = _in_a_thread(_blas_threads)
        _in_a_thread(lambda: qr_streams.fold(
            rows.shape[1], sizes, owners, fill, None,
            lambda done, total, share: during.append(_blas_threads())))
        assert during and all(t == ([1] * len(before) if narrow else before) for t in during)
        assert _in_a_thread(_blas_threads) == before
    finally:
        _in_a_thread(two.restore_original_limits)


class _Threads:
    """A stand-in for threadpoolctl's controller: BLAS's thread count, as limits set it."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def limit(self, limits: int, user_api: str) -> _Restorer:
        restorer = _Restorer(self, self.threads)
        self.threads = limits
        return restorer


class _Restorer:
    def __init__(self, blas: _Threads, found: int) -> None:
        self.blas, self.found = blas, found

    def restore_original_limits(self) -> None:
        self.blas.threads = self.found


@pytest.mark.parametrize("joint", [False, True])
def test_an_inversions_model_is_built_at_one_blas_thread(monkeypatch, joint):
    """The model's build runs tiny BLAS products (a grain's moments times an order's map):
    at one thread, not waking OpenBLAS's others for each (`inversion.build_model`), both for
    one map and for scans inverted jointly; BLAS has its threads again after."""
    rng = np.random.default_rng(3)
    sample = synth.make_sample((20 * UM, 20 * UM), 10 * UM, 4e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0.0, 0.0), noise=5e-9,
                      rng=rng)
    blas = _Threads(2)  # a stand-in for OpenBLAS's count, as limits set it
    monkeypatch.setattr(qr_streams, "_controller", blas)
    built = GreenModel.build.__func__
    during: list[int] = []

    def build(cls, *args, **kwargs):
        during.append(blas.threads)
        return built(cls, *args, **kwargs)

    monkeypatch.setattr(GreenModel, "build", classmethod(build))
    if joint:
        joint_solver.invert_scans([joint_solver.Scan(data, 1 * UM, (0.0, 0.0), sigma=5e-9)],
                                  sample.grains, model="cuboid", device="cpu")
    else:
        invert_map(data, sample.grains, height=1 * UM, sensor_size=(0.0, 0.0), sigma=5e-9,
                   device="cpu")
    assert during == [1]
    assert blas.threads == 2


@pytest.mark.parametrize("fold_first", [True, False])
def test_a_builds_one_blas_thread_never_holds_an_overlapping_fold_to_it(monkeypatch,
                                                                        fold_first):
    """A fold's limit and a build's (one thread, `inversion.build_model`) in force at once in
    threads of one process: BLAS has the fold's threads, whichever began first, and what it
    had before once both end (the first to begin set the limit for all: a fold on a larger
    machine begun during a build ran its QR at one thread)."""
    blas = _Threads(3)
    monkeypatch.setattr(qr_streams, "_controller", blas)
    fold, build = qr_streams.blas_limited(2), qr_streams.blas_limited(1)
    first, second = (fold, build) if fold_first else (build, fold)
    first.__enter__()
    second.__enter__()
    assert blas.threads == 2
    build.__exit__(None, None, None)
    assert blas.threads == 2
    fold.__exit__(None, None, None)
    assert blas.threads == 3


@pytest.mark.parametrize("fold_first", [True, False])
def test_overlapping_limits_set_and_restore_blas_from_whichever_thread(fold_first):
    """Real threadpoolctl (from 3.8 only the thread that first set OpenBLAS's threads sets
    them while it lives, the others silently not): a fold's limit and a build's begun in two
    threads that both live until both end, the one begun first ending first: BLAS has the
    fold's threads while both are in force, the second's once the first ends (the raise or
    the lowering is not lost), and its own once both end (the last's restore is not lost,
    which left BLAS at the build's one thread for the rest of the process)."""
    asks = (2, 1) if fold_first else (1, 2)
    first_in, second_in, first_out, second_out = (threading.Event() for _ in range(4))
    seen: list[list[int]] = []
    failed: list[BaseException] = []

    def first() -> None:
        try:
            with qr_streams.blas_limited(asks[0]):
                first_in.set()
                assert second_in.wait(30)
                seen.append(_blas_threads())
        except BaseException as exc:  # failed below
            failed.append(exc)
        finally:
            first_out.set()
            assert second_out.wait(30)  # alive until the second's limit ends

    def second() -> None:
        try:
            assert first_in.wait(30)
            with qr_streams.blas_limited(asks[1]):
                second_in.set()
                assert first_out.wait(30)
                seen.append(_blas_threads())
        except BaseException as exc:  # failed below
            failed.append(exc)
        finally:
            second_in.set()
            second_out.set()

    before, after = _both_at_two_blas_threads(first, second)
    assert not failed
    assert seen == [[2] * len(before), [asks[1]] * len(before)]
    assert after == before
