"""Array backends for the device solver: the few operations it needs that NumPy and CuPy
spell differently (in-place QR, triangular solves, transfers, the Green's kernels).

`CupyArrays` is the GPU (cuSOLVER's geqrf, cuBLAS's trsm, the numba.cuda kernels of
`cuboid_gpu`). `NumpyArrays` runs the same solver on the CPU (LAPACK through SciPy), with
the Green's blocks from the CPU kernel or, with ``kernels="cuda"``, from the CUDA kernels run
in numba's simulator: that is how the GPU path's logic is tested on machines without one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from smm_daq.analysis.mmt.models.cuboid import GreenModel

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

    def green(self, model: GreenModel) -> Any:
        """The Green's kernels for this backend: `.block(sensors, out)` and
        `.field(sensors, m, out)` on this backend's arrays."""
        if self.kernels == "cuda":
            from smm_daq.analysis.mmt.models.cuboid_gpu import DeviceGreen

            return _Contiguous(DeviceGreen.upload(model, self.to_device))
        return _HostGreen(model)


class _HostGreen:
    """`GreenModel` behind the device kernels' interface."""

    def __init__(self, model: GreenModel) -> None:
        self.model = model

    def block(self, sensors: np.ndarray, out: np.ndarray) -> None:
        out[...] = self.model.block(sensors)

    def field(self, sensors: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
        out[...] = self.model.block(sensors) @ m.reshape(-1)


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

    def green(self, model: GreenModel) -> Any:
        from smm_daq.analysis.mmt.models.cuboid_gpu import DeviceGreen

        return DeviceGreen.upload(model, self.to_device)
