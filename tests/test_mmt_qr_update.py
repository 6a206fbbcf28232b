"""The triangular factor updated block by block (`QRUpdate`) against NumPy's QR of all the
rows at once (LAPACK dgeqrf)."""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.mmt.solver import lapack_nogil
from smm_daq.analysis.mmt.solver.qr_update import QRUpdate, panel_width


def _fold(a: np.ndarray, sizes: list[int], panel: int | None) -> np.ndarray:
    qr = QRUpdate(a.shape[1], max(sizes), panel)
    start = 0
    for size in sizes:
        qr.add(np.array(a[start:start + size], order="F"))  # a copy: add overwrites it
        start += size
    assert start == a.shape[0]
    return qr.r


def _signed(r: np.ndarray) -> np.ndarray:
    """R with a diagonal ≥ 0: the unique factor of a full-rank matrix."""
    return r * np.where(np.diag(r) < 0, -1.0, 1.0)[:, None]


@pytest.mark.parametrize(("n", "sizes", "panel"), [
    (7, [40, 3, 25], 3),  # panels of 3, the last of 1; a block shorter than a panel
    (12, [12, 12, 1], 5),  # a block of one row
    (30, [100, 64, 17], None),  # the default panel wider than the matrix
    (300, [500, 120, 381], 128),  # three panels, the last short
])
def test_matches_the_qr_of_all_rows(n: int, sizes: list[int], panel: int | None) -> None:
    rng = np.random.default_rng(n)
    # columns of very different scales, as Q's are (deep and shallow grains)
    a = rng.standard_normal((sum(sizes), n)) * np.logspace(0, -6, n)
    r = _fold(a, sizes, panel)
    expected = np.linalg.qr(a, mode="r")
    assert np.array_equal(r, np.triu(r))
    error = np.abs(_signed(r) - _signed(expected)) / np.linalg.norm(a, axis=0)  # per column
    assert error.max() < 1e-12


def test_rank_deficient_rows_keep_rᵀr() -> None:
    """A zero column and a repeated one (singular Q): R is no longer unique, RᵀR = AᵀA is."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((90, 10))
    a[:, 4] = 0.0
    a[:, 7] = a[:, 2]
    r = _fold(a, [30, 30, 30], 4)
    np.testing.assert_allclose(r.T @ r, a.T @ a, atol=1e-11 * np.abs(a.T @ a).max())
    assert r[4, 4] == 0.0
    assert abs(r[7, 7]) < 1e-12 * abs(r[2, 2])


def test_panel_width_grows_with_the_columns() -> None:
    widths = [panel_width(n) for n in (10, 601, 1501, 5626, 12901)]
    assert widths == sorted(widths)
    assert QRUpdate(10, 5).panel == 10  # never wider than the matrix


def test_rows_of_the_wrong_shape_or_type_are_refused() -> None:
    qr = QRUpdate(6, 10, 4)
    for rows in (np.zeros((3, 5), order="F"), np.zeros((11, 6), order="F"),
                 np.zeros((3, 6), dtype=np.float32, order="F")):
        with pytest.raises(ValueError, match="rows"):
            qr.add(rows)
    assert not qr.r.any()


def test_an_update_may_start_from_a_triangle_it_then_updates_in_place():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((30, 6)), rng.standard_normal((9, 6))
    start = np.asfortranarray(np.linalg.qr(a, mode="r"))
    qr = QRUpdate(6, 9, r=start)
    qr.add(np.asfortranarray(b))
    assert qr.r is start
    whole = np.linalg.qr(np.r_[a, b], mode="r")
    np.testing.assert_allclose(np.abs(start), np.abs(whole), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected a float64 6 × 6 triangle in Fortran order"):
        QRUpdate(6, 9, r=np.zeros((6, 6)).T[:, :5])


class _Cancelled(Exception):
    pass


def test_each_panel_but_the_last_reports_the_share_done_and_may_stop_the_update():
    """An update of the lab's size is tens of panels and tens of seconds: each panel tells how
    far it has got (a share of the flops, rising to below 1) without changing R, and an
    exception from that report (a cancel) stops the update at that panel."""
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((200, 50))
    plain = QRUpdate(50, 200, panel=16)
    plain.add(np.array(rows, order="F"))
    shares: list[float] = []
    told = QRUpdate(50, 200, panel=16)
    told.add(np.array(rows, order="F"), after_panel=shares.append)
    assert np.array_equal(told.r, plain.r)
    assert len(shares) == 3  # panels of 16, 16, 16 and 2 columns: the last not reported
    assert 0 < shares[0] < shares[1] < shares[2] < 1
    # the first panel's work (16² + 2·16·34 per row) of all four panels' (2,500 per row)
    assert shares[0] == pytest.approx((16 * 16 + 2 * 16 * 34) / 2500)

    def cancel(share: float) -> None:
        raise _Cancelled

    stopped = QRUpdate(50, 200, panel=16)
    with pytest.raises(_Cancelled):
        stopped.add(np.array(rows, order="F"), after_panel=cancel)
    assert not stopped.r[16:, 16:].any()  # no panel after the first was factored


def test_a_triangle_merged_as_one_reaches_each_panels_rows_to_its_last_column(monkeypatch):
    """Two streams' triangles merged (`streams.fold`): the second triangle's rows below a
    panel's last column are zero there, and are left out of its reflectors: the same R as
    the dense update's and the QR's of all the rows, a third of the work."""
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((120, 50)), rng.standard_normal((90, 50)) * np.logspace(0, -4, 50)
    first = np.asfortranarray(np.linalg.qr(a, mode="r"))
    second = np.asfortranarray(np.linalg.qr(b, mode="r"))
    dense = QRUpdate(50, 50, panel=16, r=first.copy(order="F"))
    dense.add(second.copy(order="F"))
    stacked: list[int] = []
    real = lapack_nogil.dgeqrt
    monkeypatch.setattr(lapack_nogil, "dgeqrt",
                        lambda s, t: (stacked.append(s.shape[0]), real(s, t))[1])
    merged = QRUpdate(50, 50, panel=16, r=first.copy(order="F"))
    merged.add(second.copy(order="F"), triangular=True)
    assert stacked == [16 + 16, 16 + 32, 16 + 48, 2 + 50]  # the panel's rows of R, then B's
    scale = np.abs(dense.r).max()
    np.testing.assert_allclose(merged.r, dense.r, rtol=0, atol=1e-13 * scale)
    whole = _signed(np.linalg.qr(np.r_[a, b], mode="r"))
    np.testing.assert_allclose(_signed(merged.r), whole, rtol=0, atol=1e-12 * scale)
