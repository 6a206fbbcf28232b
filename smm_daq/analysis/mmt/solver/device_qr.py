"""The MMT least squares on an array backend (`arrays`): a GPU through CuPy, or NumPy.

The same three steps as the CPU path of `inversion`, with its signatures, so `invert_map`
and `joint.invert_scans` run either: `accumulate` (R of [Q | φ] over blocks of sensors),
`solve_triangle` (the unknowns and the k × k diagonal blocks of (QᵀQ)⁻¹, k unknowns per
grain, in columns scaled to unit norm) and `forward` (Q·x, the fitted map). The model may be
any of the grain models (`cuboid.GreenModel`, `multipole.MultipoleModel`) or several scans
stacked (`joint.StackedModel`): `arrays` gives each its Green's kernels.

Blocks are large: each block of Q is written by the Green's kernel straight under the
triangle so far, in one column-major buffer [R; Q_block | φ_block], and that buffer is
factored in place by Householder QR (geqrf); its upper triangle is the new R. Stacking on a
full R costs 2n²·(2n/3) more flops per block than the structured update the CPU uses
(LAPACK tpqrt, which cuSOLVER lacks), a fraction 2n/(3B) of the whole for B rows a block:
the buffer is sized from the free device memory, so the whole Q of the seed's largest case
(251,001 × 5,626) is one block, and a lab-size case of 12,900 columns takes blocks of over
150,000 rows (cuSOLVER's 32-bit sizes cap the buffer at 2^31 entries).

The solve runs on the device when R (columns scaled) is well conditioned and there is no
damping: y = Rs⁻¹c and W = Rs⁻¹ by triangular solves, the grains' covariance blocks from W's
rows. Otherwise, and for cond(Q) (LAPACK's estimate, which has no GPU counterpart), R is
copied to the host and `inversion.solve_triangle` does what the CPU path does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smm_daq.analysis.mmt.solver.arrays import MAX_ENTRIES, NumpyArrays, per_grain
from smm_daq.analysis.mmt.solver.inversion import (
    SINGULAR_RCOND,
    BlockProgress,
    MergeProgress,
    Solution,
    Triangle,
    _rcond,
    condition_number,
    solve_triangle,
)

BUFFER_SHARE = 0.5  # of the free device memory, for the stacked block buffer
MIN_ROWS_PER_COLUMN = 4  # host blocks: 4 rows per column (stacking costs 17 % more flops)
COVARIANCE_CHUNK = 1024  # grains per batched product for the covariance blocks


@dataclass
class DeviceTriangle:
    """R of [Q | φ] on the device: (n + 1) × (n + 1), upper triangular, column-major."""

    full: Any

    @property
    def n(self) -> int:
        return self.full.shape[0] - 1


def device_bytes(n: int, n_sensors: int, model_bytes: int, sensor_columns: int = 3) -> int:
    """The device memory below which a solve of n unknowns from n_sensors sensors cannot
    run: while the blocks are folded in, the stacked block buffer at its fewest rows (as many
    as columns: 2 (n + 1)²) with the triangle taken from it after each block, or the copy of
    R made from it at the end ((n + 1)² either way), and the grains' model arrays
    (`model_bytes`, `models.sizes`), the sensors (`sensor_columns` doubles each) and the
    data; in the solve, R, its scaled copy and its inverse (3 (n + 1)², the model and the
    sensors gone). A floor: LAPACK's workspace and wider blocks come on top."""
    return 8 * (3 * (n + 1) ** 2 + (sensor_columns + 1) * n_sensors) + model_bytes


@dataclass
class DeviceSolver:
    """`accumulate`, `solve_triangle` and `forward` of `inversion` on an array backend.

    rows: sensors per block; None sizes blocks from the free device memory (a share
    ``BUFFER_SHARE`` of it), or on the host at ``MIN_ROWS_PER_COLUMN`` per column. `timings`
    holds the last call's stages (s)."""

    arrays: Any = field(default_factory=NumpyArrays)
    rows: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def _block_rows(self, n: int, n_sensors: int, n_grains: int) -> int:
        cols = n + 1
        free = self.arrays.free_bytes()
        if self.rows is not None:
            rows = self.rows
        elif free is None:
            rows = MIN_ROWS_PER_COLUMN * cols
        else:
            rows = max(cols, int(BUFFER_SHARE * free) // (8 * cols) - cols)
        rows = min(rows, MAX_ENTRIES // cols - cols, (2**31 - 1) // max(n_grains, 1))
        return max(1, min(rows, n_sensors))

    def accumulate(self, model: Any, sensors: np.ndarray, phi: np.ndarray, *,
                   block: int | None = None, keep_bytes: float = 0,
                   on_block: BlockProgress | None = None,
                   on_merge: MergeProgress | None = None,
                   streams: int | None = None) -> tuple[DeviceTriangle, None]:
        """R of [Q | φ] (`block`, `keep_bytes`, `on_merge` and `streams` are the CPU path's:
        blocks here are sized by `rows`, folded in one triangle with nothing to merge, and Q
        is not kept, `forward` recomputes it); `on_block` as the CPU's."""
        arr = self.arrays
        xp = arr.xp
        n = model.n_columns
        t0 = time.perf_counter()
        green = arr.green(model)
        sens = arr.to_device(np.ascontiguousarray(sensors, dtype=float))
        data = arr.to_device(np.ascontiguousarray(phi, dtype=float))
        rows = self._block_rows(n, sensors.shape[0], model.grains.n_grains)
        buf = xp.zeros((n + 1 + rows, n + 1), dtype=np.float64, order="F")
        arr.synchronize()
        t_green = 0.0
        t_qr = 0.0
        t_upload = time.perf_counter() - t0
        for s in range(0, sensors.shape[0], rows):
            size = min(rows, sensors.shape[0] - s)
            t1 = time.perf_counter()
            green.block(sens[s:s + size], buf[n + 1:n + 1 + size, :n])
            buf[n + 1:n + 1 + size, n] = data[s:s + size]
            arr.synchronize()
            t2 = time.perf_counter()
            factored = arr.geqrf(buf[:n + 1 + size])
            buf[:n + 1] = xp.triu(factored[:n + 1])
            arr.synchronize()
            t_green += t2 - t1
            t_qr += time.perf_counter() - t2
            if on_block is not None:
                on_block(s + size, sensors.shape[0])
        full = xp.array(buf[:n + 1], order="F")
        del buf
        full *= xp.where(xp.diag(full) < 0, -1.0, 1.0)[:, None]  # as the CPU's: diagonal ≥ 0
        arr.synchronize()
        self.timings = {"upload_s": t_upload, "green_s": t_green, "qr_s": t_qr,
                        "block_rows": float(rows)}
        return DeviceTriangle(full), None

    def solve_triangle(self, tri: DeviceTriangle, damping: float = 0.0,
                       per_grain: int = 3, *, keep_pseudo_inverse: bool = False) -> Solution:
        """As `inversion.solve_triangle`, on the device where R is well conditioned (no
        pseudo-inverse to keep), else on the host."""
        arr = self.arrays
        xp = arr.xp
        n = tri.n
        t0 = time.perf_counter()
        host = arr.to_host(tri.full)
        host_tri = Triangle(np.asfortranarray(host[:n, :n]), host[:n, n].copy())
        del host
        norms = host_tri.column_norms
        zero = norms == 0
        scale = np.where(zero, 1.0, 1.0 / np.where(zero, 1.0, norms))
        rcond = _rcond(np.asfortranarray(host_tri.r * scale[None, :])) if n else 1.0
        cond = condition_number(rcond)
        self.timings["solve_host_s"] = time.perf_counter() - t0
        if damping > 0 or not rcond > SINGULAR_RCOND or np.any(zero):
            return solve_triangle(host_tri, damping, per_grain,
                                  keep_pseudo_inverse=keep_pseudo_inverse)
        del host_tri
        t1 = time.perf_counter()
        s = arr.to_device(scale)
        rs = xp.asfortranarray(tri.full[:n, :n] * s[None, :])
        y = arr.solve_triangular(rs, tri.full[:n, n])
        w = arr.triangular_inverse(rs)
        del rs
        w *= s[:, None]
        blocks = grain_blocks(xp, w, per_grain)
        x = arr.to_host(y * s)
        blocks_host = arr.to_host(blocks)
        self.timings["solve_device_s"] = time.perf_counter() - t1
        return Solution(x, blocks_host, np.zeros(n, dtype=bool), cond, n)

    def forward(self, model: Any, sensors: np.ndarray, m: np.ndarray, *,
                block: int | None = None, rows: list[Any] | None = None
                ) -> np.ndarray:
        """Q·x at the sensors (`block` and `rows` are the CPU path's and not used)."""
        arr = self.arrays
        green = arr.green(model)
        sens = arr.to_device(np.ascontiguousarray(sensors, dtype=float))
        mag = arr.to_device(np.ascontiguousarray(np.reshape(m, (-1, per_grain(model))),
                                                 dtype=float))
        out = arr.xp.empty(sensors.shape[0], dtype=np.float64)
        step = self._block_rows(model.n_columns, sensors.shape[0], model.grains.n_grains)
        for s in range(0, sensors.shape[0], step):
            green.field(sens[s:s + step], mag, out[s:s + step])
        return arr.to_host(out)


def grain_blocks(xp: Any, w: Any, k: int = 3) -> Any:
    """Diagonal k × k blocks of W Wᵀ (G, k, k) for W (n, n), n = k·G, in chunks of grains
    (each a batched product of (c, k, n) by its transpose), made exactly symmetric.

    A GPU's batched product need not sum entry (i, j) over n in the order it sums (j, i) (a
    split of n across thread blocks, reduced in any order): the two differ by rounding, at most
    about n·ε of sqrt(C_ii C_jj), so far inside the reader's allowance; (C + Cᵀ)/2 makes them
    one value, so the table's cov_* columns are either triangle's, as on the CPU, whose blocks
    are symmetric as computed (and unchanged by it)."""
    n = w.shape[0]
    g_total = n // k
    out = xp.empty((g_total, k, k), dtype=np.float64)
    for g0 in range(0, g_total, COVARIANCE_CHUNK):
        g1 = min(g_total, g0 + COVARIANCE_CHUNK)
        rows = xp.ascontiguousarray(w[k * g0:k * g1]).reshape(g1 - g0, k, n)
        block = rows @ rows.transpose(0, 2, 1)
        out[g0:g1] = 0.5 * (block + block.transpose(0, 2, 1))
    return out

