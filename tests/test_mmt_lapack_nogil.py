"""The QR update's LAPACK routines called through ctypes without the GIL (`lapack_nogil`):
the same numbers as SciPy's f2py wrappers (which hold the GIL for the whole call, so a window
inverting a map in a worker thread stopped handling events for seconds), in place on views."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from scipy.linalg import lapack

from smm_daq.analysis.mmt.solver import lapack_nogil
from smm_daq.analysis.mmt.solver.qr_update import QRUpdate

FUNCFLAG_PYTHONAPI = 4  # ctypes: a function called holding the GIL (PYFUNCTYPE)


def test_dgeqrt_and_dtpmqrt_give_scipys_numbers_in_place_on_views() -> None:
    rng = np.random.default_rng(0)
    w, m, n = 5, 9, 8
    big = np.asfortranarray(rng.normal(size=(w + m + 3, w + 2)))  # the stack: a view in it
    stack = big[1:1 + w + m, 2:2 + w]
    factored, t_ref, info = lapack.dgeqrt(w, np.array(stack, order="F"))
    assert info == 0
    t = np.zeros((w + 1, w + 1), order="F")[:w, :w]
    lapack_nogil.dgeqrt(stack, t)
    np.testing.assert_array_equal(stack, factored)
    np.testing.assert_array_equal(t, t_ref)
    r = np.asfortranarray(rng.normal(size=(w + 2, n + 4)))  # R's panel rows: a view
    outside = r.copy()
    b_whole = np.asfortranarray(rng.normal(size=(m, n + 3)))  # trailing columns: a view
    a, b = r[1:1 + w, 4:], b_whole[:, 3:]
    top, bottom, info = lapack.dtpmqrt(0, np.array(stack[w:], order="F"), t, np.array(a),
                                       np.array(b), trans="T")
    assert info == 0
    lapack_nogil.dtpmqrt_left_transposed(stack[w:], t, a, b)
    np.testing.assert_array_equal(a, top)
    np.testing.assert_array_equal(b, bottom)
    outside[1:1 + w, 4:] = top  # nothing of R outside the view changed
    np.testing.assert_array_equal(r, outside)


def test_a_c_ordered_or_wrong_typed_matrix_is_refused() -> None:
    t = np.zeros((3, 3), order="F")
    with pytest.raises(ValueError, match="Fortran order"):
        lapack_nogil.dgeqrt(np.zeros((6, 3)), t)
    with pytest.raises(ValueError, match="float64"):
        lapack_nogil.dgeqrt(np.zeros((6, 3), dtype=np.float32, order="F"), t)


def test_the_qr_update_runs_its_lapack_without_holding_the_gil(monkeypatch) -> None:
    """Every LAPACK call of a block update goes through ctypes functions that release the GIL
    (not SciPy's f2py wrappers)."""
    for routine in (lapack_nogil.DGEQRT, lapack_nogil.DTPMQRT):
        assert isinstance(routine, ctypes._CFuncPtr)
        assert not routine._flags_ & FUNCFLAG_PYTHONAPI
    calls: list[str] = []
    for name in ("dgeqrt", "dtpmqrt_left_transposed"):
        real = getattr(lapack_nogil, name)
        monkeypatch.setattr(lapack_nogil, name,
                            lambda *a, real=real, name=name: (calls.append(name), real(*a)))

    def held(*_a, **_k):
        raise AssertionError("an f2py LAPACK wrapper (holds the GIL) was called")

    monkeypatch.setattr(lapack, "dgeqrt", held)
    monkeypatch.setattr(lapack, "dtpmqrt", held)
    qr = QRUpdate(10, 20, panel=4)
    qr.add(np.asfortranarray(np.random.default_rng(1).normal(size=(20, 10))))
    assert calls.count("dgeqrt") == 3 and calls.count("dtpmqrt_left_transposed") == 2


def test_the_triangular_inverse_is_scipys_and_runs_without_the_gil(monkeypatch) -> None:
    from smm_daq.analysis.mmt.solver.inversion import _triangular_inverse

    rng = np.random.default_rng(2)
    r = np.asfortranarray(np.triu(rng.normal(size=(40, 40))) + 5 * np.eye(40))
    expected, info = lapack.dtrtri(r, lower=0)
    assert info == 0
    assert not lapack_nogil.DTRTRI._flags_ & FUNCFLAG_PYTHONAPI

    def held(*_a, **_k):
        raise AssertionError("an f2py LAPACK wrapper (holds the GIL) was called")

    monkeypatch.setattr(lapack, "dtrtri", held)
    np.testing.assert_array_equal(_triangular_inverse(r), expected)
    np.testing.assert_array_equal(r, np.triu(r))  # R itself kept
    singular = r.copy(order="F")
    singular[7, 7] = 0.0
    with pytest.raises(np.linalg.LinAlgError, match="singular at column 8"):
        _triangular_inverse(singular, overwrite=True)
