"""Fill NaN pixels of a map smoothly, so Fourier transforms and interpolation can run over them.

The filled values solve Laplace's equation inside each hole with the measured pixels as
boundary values (harmonic inpainting): continuous, no new extrema, no ringing. The caller
re-masks the result; the filled values are never reported as data.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from smm_daq.errors import InputError


def fill_nan(values: np.ndarray) -> np.ndarray:
    """A copy of the 2-D array `values` with every NaN replaced by a harmonic interpolant."""
    values = np.asarray(values, dtype=float)
    holes = ~np.isfinite(values)
    if not holes.any():
        return values.copy()
    if holes.all():
        raise InputError("the map has no measured pixels (every value is NaN)")
    ny, nx = values.shape
    index = -np.ones(values.shape, dtype=np.int64)
    iy, ix = np.nonzero(holes)
    n = iy.size
    index[iy, ix] = np.arange(n)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    diag = np.zeros(n)
    rhs = np.zeros(n)
    known = np.where(holes, 0.0, values)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        jy, jx = iy + dy, ix + dx
        inside = (jy >= 0) & (jy < ny) & (jx >= 0) & (jx < nx)
        diag[inside] += 1.0
        src = np.nonzero(inside)[0]
        jy, jx = jy[inside], jx[inside]
        neighbour = index[jy, jx]
        unknown = neighbour >= 0
        rows.append(src[unknown])
        cols.append(neighbour[unknown])
        vals.append(-np.ones(int(unknown.sum())))
        rhs[src[~unknown]] += known[jy[~unknown], jx[~unknown]]
    matrix = sp.csr_matrix(
        (np.concatenate([diag, *vals]),
         (np.concatenate([np.arange(n), *rows]), np.concatenate([np.arange(n), *cols]))),
        shape=(n, n),
    )
    out = values.copy()
    out[iy, ix] = spla.spsolve(matrix.tocsc(), rhs)
    return out
