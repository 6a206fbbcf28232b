"""The MMT solver's long LAPACK calls made with the GIL released: dgeqrt and dtpmqrt (the QR
update), dtrtri (R⁻¹, for the covariances).

SciPy's f2py wrappers (`scipy.linalg.lapack`) hold Python's GIL for the whole call: one
trailing update of the MMT QR runs for seconds at thousands of columns, and meanwhile no other
Python thread runs (the window that started the inversion in a worker stops handling events).
The same routines of SciPy's own LAPACK (`scipy.linalg.cython_lapack`) are called here through
ctypes, which releases the GIL during a foreign call. Arrays are passed in place, Fortran
order, their leading dimension read from their strides, so views into a larger matrix (a
panel's rows, the trailing columns of R) need no copy.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np
from scipy.linalg import cython_lapack

_P = ctypes.c_void_p  # every argument of a Fortran routine is a pointer


def _routine(name: str, n_args: int) -> Callable[..., None]:
    """SciPy's `name` as a C function of `n_args` pointers (ctypes: called without the GIL)."""
    capsule = ctypes.py_object(cython_lapack.__pyx_capi__[name])
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                  ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    return ctypes.CFUNCTYPE(None, *[_P] * n_args)(address)


DGEQRT = _routine("dgeqrt", 9)
DTPMQRT = _routine("dtpmqrt", 17)
DTRTRI = _routine("dtrtri", 6)


def _leading(a: np.ndarray, name: str) -> int:
    """The leading dimension of a Fortran-ordered matrix or view of one (float64)."""
    fortran = a.dtype == np.float64 and a.ndim == 2 and (a.shape[0] <= 1 or a.strides[0] == 8)
    ld = max(1, a.shape[0]) if not fortran or a.shape[1] <= 1 else a.strides[1] // 8
    if not fortran or a.strides[1] % 8 or ld < a.shape[0]:
        raise ValueError(f"{name}: expected a float64 matrix in Fortran order, got "
                         f"{a.dtype} {a.shape} strides {a.strides}")
    return ld


def _ints(*values: int) -> list[ctypes.c_int]:
    return [ctypes.c_int(v) for v in values]


def _check(routine: str, info: ctypes.c_int) -> None:
    if info.value != 0:  # only for an illegal argument: a programming error
        raise RuntimeError(f"{routine} failed (info {info.value})")


def dgeqrt(a: np.ndarray, t: np.ndarray) -> None:
    """QR of `a` (m × n, m ≥ n) in place, one block of nb = n columns: R above its diagonal,
    the reflectors below; their triangular factor into `t` (n × n)."""
    m, n = a.shape
    if t.shape[0] < n or t.shape[1] < n or m < n:
        raise ValueError(f"dgeqrt: a {a.shape}, t {t.shape}: expected m ≥ n and t n × n")
    work = np.empty(n * n)
    mm, nn, nb, lda, ldt, info = _ints(m, n, n, _leading(a, "a"), _leading(t, "t"), 0)
    DGEQRT(ctypes.byref(mm), ctypes.byref(nn), ctypes.byref(nb), a.ctypes.data,
           ctypes.byref(lda), t.ctypes.data, ctypes.byref(ldt), work.ctypes.data,
           ctypes.byref(info))
    _check("dgeqrt", info)


def dtpmqrt_left_transposed(v: np.ndarray, t: np.ndarray, a: np.ndarray,
                            b: np.ndarray) -> None:
    """[a; b] ← Qᵀ [a; b] in place, Q the reflectors of a triangular-pentagonal QR with l = 0
    (`v` m × k: their rows below an identity, `t` k × k their factor from `dgeqrt`); a is k × n,
    b m × n."""
    m, k = v.shape
    n = a.shape[1]
    if a.shape[0] != k or b.shape != (m, n) or t.shape[0] < k or t.shape[1] < k:
        raise ValueError(f"dtpmqrt: v {v.shape}, t {t.shape}, a {a.shape}, b {b.shape} do "
                         "not fit together")
    if n == 0:
        return
    work = np.empty(k * n)
    side, trans = ctypes.create_string_buffer(b"L"), ctypes.create_string_buffer(b"T")
    mm, nn, kk, ll, nb, ldv, ldt, lda, ldb, info = _ints(
        m, n, k, 0, k, _leading(v, "v"), _leading(t, "t"), _leading(a, "a"),
        _leading(b, "b"), 0)
    DTPMQRT(side, trans, ctypes.byref(mm), ctypes.byref(nn), ctypes.byref(kk),
            ctypes.byref(ll), ctypes.byref(nb), v.ctypes.data, ctypes.byref(ldv),
            t.ctypes.data, ctypes.byref(ldt), a.ctypes.data, ctypes.byref(lda),
            b.ctypes.data, ctypes.byref(ldb), work.ctypes.data, ctypes.byref(info))
    _check("dtpmqrt", info)


def dtrtri_upper(r: np.ndarray) -> int:
    """R⁻¹ of an upper-triangular R (n × n) in place (its lower triangle untouched); LAPACK's
    info: 0, or i > 0 when R's i-th diagonal element (from 1) is zero (R is then unchanged in
    part)."""
    n = r.shape[0]
    if r.shape != (n, n):
        raise ValueError(f"dtrtri: r {r.shape}: expected a square matrix")
    uplo, diag = ctypes.create_string_buffer(b"U"), ctypes.create_string_buffer(b"N")
    nn, lda, info = _ints(n, _leading(r, "r"), 0)
    DTRTRI(uplo, diag, ctypes.byref(nn), r.ctypes.data, ctypes.byref(lda), ctypes.byref(info))
    if info.value < 0:
        _check("dtrtri", info)
    return info.value
