"""Array backends for the device solver: the few operations it needs that NumPy and CuPy
spell differently (in-place QR, triangular solves, transfers, the Green's kernels).

`CupyArrays` is the GPU (cuSOLVER's geqrf, cuBLAS's trsm, the numba.cuda kernels of
`cuboid_gpu` and `multipole_gpu`). `NumpyArrays` runs the same solver on the CPU (LAPACK
through SciPy), with the Green's blocks from the CPU kernels or, with ``kernels="cuda"``, from
the CUDA kernels run in numba's simulator: that is how the GPU path's logic is tested on
machines without one.

Models: `cuboid.GreenModel`, `multipole.MultipoleModel`, and several scans stacked
(`joint.StackedModel`: each scan's rows from its own model's kernels, weighted by 1/σ).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.models.multipole import MultipoleModel

# cuSOLVER's geqrf takes 32-bit sizes: the stacked matrix stays below 2^31 entries
MAX_ENTRIES = 2**31 - 1


class NumpyArrays:
    """NumPy and LAPACK: the reference the GPU backend is tested against."""

    name = "numpy"
    xp = np

    def __init__(self, kernels: str = "cpu") -> None:
        if kernels not in ("cpu", "cuda"):
            raise ValueError(f"kernels {kernels!r}: expected 'cpu' or 'cuda'")
        self.kernels = kernels

    def to_device(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def synchronize(self) -> None:
        """Nothing is asynchronous here."""

    def free_bytes(self) -> None:
        """No device memory to size blocks from (host blocks are sized by their columns)."""
        return None

    def geqrf(self, a: np.ndarray) -> np.ndarray:
        """Householder QR of a (m, n), m ≥ n, column-major: returns an array whose upper
        triangle is R (`a` itself when it is contiguous)."""
        qr, _, _, info = lapack.dgeqrf(a, overwrite_a=1)
        if info != 0:  # only for an illegal argument: a programming error
            raise RuntimeError(f"dgeqrf failed (info {info})")
        return qr

    def solve_triangular(self, r: np.ndarray, b: np.ndarray) -> np.ndarray:
        return linalg.solve_triangular(r, b, check_finite=False)

    def triangular_inverse(self, r: np.ndarray) -> np.ndarray:
        """R⁻¹ of an upper-triangular R, overwriting it."""
        inv, info = lapack.dtrtri(r, lower=0, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"triangular factor is singular at column {info}")
        return inv

    def green(self, model: Any) -> Any:
        """The Green's kernels for this backend: `.block(sensors, out)` and
        `.field(sensors, m, out)` on this backend's arrays."""
        return _green(model, self.to_device, self.to_host,
                      lambda one: (_Contiguous(_device_green(one, self.to_device))
                                   if self.kernels == "cuda" else _HostGreen(one)))


def per_grain(model: Any) -> int:
    """Unknowns per grain of a model (3 for a magnetization, 3, 8 or 15 for multipoles)."""
    return model.n_columns // model.grains.n_grains


def _device_green(model: GreenModel | MultipoleModel, to_device: Any) -> Any:
    """One model's CUDA kernels with its arrays uploaded."""
    if isinstance(model, MultipoleModel):
        from smm_daq.analysis.mmt.models.multipole_gpu import DeviceMultipole

        return DeviceMultipole.upload(model, to_device)
    from smm_daq.analysis.mmt.models.cuboid_gpu import DeviceGreen

    return DeviceGreen.upload(model, to_device)


def _green(model: Any, to_device: Any, to_host: Any, one: Any) -> Any:
    """`one(model)` for a single model; for stacked scans, `one` of each scan's model behind
    `_StackedGreen`."""
    parts = getattr(model, "models", None)
    if parts is None:
        return one(model)
    return _StackedGreen([one(m) for m in parts], [float(w) for w in model.weights], to_host)


class _HostGreen:
    """A model's CPU kernel behind the device kernels' interface."""

    def __init__(self, model: GreenModel | MultipoleModel) -> None:
        self.model = model

    def block(self, sensors: np.ndarray, out: np.ndarray) -> None:
        self.model.block(np.ascontiguousarray(sensors[:, :3]), out)

    def field(self, sensors: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
        rows = self.model.block(np.ascontiguousarray(sensors[:, :3]),
                                np.empty((sensors.shape[0], self.model.n_columns), order="F"))
        out[...] = rows @ m.reshape(-1)


class _StackedGreen:
    """Several scans' kernels as one: sensors (B, 4) hold (x, y, z, scan index), each run of
    one scan's rows computed by that scan's kernels and weighted by its 1/σ (as
    `joint.StackedModel.block`). The scan indices are read back to the host (B numbers)."""

    def __init__(self, parts: list[Any], weights: list[float], to_host: Any) -> None:
        self.parts = parts
        self.weights = weights
        self.to_host = to_host

    def _runs(self, sensors: Any) -> list[tuple[int, int, int]]:
        index = self.to_host(sensors[:, 3]).astype(np.int64)
        cuts = np.flatnonzero(np.diff(index)) + 1
        return [(int(lo), int(hi), int(index[lo]))
                for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, index.size], strict=True)]

    def block(self, sensors: Any, out: Any) -> None:
        for lo, hi, s in self._runs(sensors):
            self.parts[s].block(sensors[lo:hi, :3], out[lo:hi])
            out[lo:hi] *= self.weights[s]

    def field(self, sensors: Any, m: Any, out: Any) -> None:
        for lo, hi, s in self._runs(sensors):
            self.parts[s].field(sensors[lo:hi, :3], m, out[lo:hi])
            out[lo:hi] *= self.weights[s]


class _Contiguous:
    """The CUDA kernels on host arrays (numba's simulator), which take only contiguous ones:
    results go through a contiguous copy."""

    def __init__(self, green: Any) -> None:
        self.green = green

    def block(self, sensors: np.ndarray, out: np.ndarray) -> None:
        tmp = np.empty(out.shape, order="F")
        self.green.block(np.ascontiguousarray(sensors), tmp)
        out[...] = tmp

    def field(self, sensors: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
        tmp = np.empty(out.shape)
        self.green.field(np.ascontiguousarray(sensors), np.ascontiguousarray(m), tmp)
        out[...] = tmp


class CupyArrays:
    """CuPy on a CUDA GPU, with the numba.cuda Green's kernels."""

    name = "cupy"

    def __init__(self) -> None:
        import cupy
        import cupyx.scipy.linalg
        from cupy.cuda import device
        from cupy_backends.cuda.libs import cusolver

        self.xp = cupy
        self._solve = cupyx.scipy.linalg.solve_triangular
        self._cusolver = cusolver
        self._handle = device.get_cusolver_handle

    def to_device(self, a: np.ndarray) -> Any:
        return self.xp.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a, order="A")  # keeps column-major R column-major

    def synchronize(self) -> None:
        self.xp.cuda.Device().synchronize()

    def free_bytes(self) -> int:
        """Free device memory plus what CuPy's pool holds unused."""
        free, _ = self.xp.cuda.runtime.memGetInfo()
        pool = self.xp.get_default_memory_pool()
        return int(free + pool.free_bytes())

    def geqrf(self, a: Any) -> Any:
        """In-place Householder QR (cuSOLVER dgeqrf) of a column-major (m, n) array or view
        with unit row stride; R is left in its upper triangle."""
        xp, cs = self.xp, self._cusolver
        m, n = a.shape
        if a.strides[0] != 8 or a.strides[1] % 8:
            raise ValueError("geqrf needs a column-major float64 array")
        lda = a.strides[1] // 8
        handle = self._handle()
        lwork = cs.dgeqrf_bufferSize(handle, m, n, a.data.ptr, lda)
        work = xp.empty(lwork, dtype=np.float64)
        tau = xp.empty(min(m, n), dtype=np.float64)
        info = xp.zeros(1, dtype=np.int32)
        cs.dgeqrf(handle, m, n, a.data.ptr, lda, tau.data.ptr, work.data.ptr, lwork,
                  info.data.ptr)
        if int(info[0]) != 0:
            raise RuntimeError(f"cuSOLVER dgeqrf failed (info {int(info[0])})")
        return a

    def solve_triangular(self, r: Any, b: Any) -> Any:
        return self._solve(r, b)

    def triangular_inverse(self, r: Any) -> Any:
        eye = self.xp.eye(r.shape[0], dtype=np.float64, order="F")
        return self._solve(r, eye, overwrite_b=True)

    def green(self, model: Any) -> Any:
        return _green(model, self.to_device, self.to_host,
                      lambda one: _device_green(one, self.to_device))
