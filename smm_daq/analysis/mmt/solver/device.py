"""Where the MMT inversion runs: ``"cpu"``, ``"gpu"`` or ``"auto"`` (the GPU when one is
usable, else the CPU).

A GPU is usable when CuPy (the ``gpu`` extra) finds a CUDA device and numba can launch
kernels on it. Nothing here imports CuPy until a GPU is asked for or probed, so the CPU path
never pays for it.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

from smm_daq.errors import InputError

DEVICES = ("auto", "cpu", "gpu")


class GPUMemoryWarning(UserWarning):
    """An inversion asked for on device "auto" does not fit the GPU's free memory and is
    solved on the CPU instead."""


@functools.cache
def gpu_problem() -> str | None:
    """Why no GPU can be used here (None when one can)."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'smm-daq[gpu]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises its own runtime errors for a missing driver
        return f"CuPy finds no CUDA device ({exc})"
    if count == 0:
        return "CuPy finds no CUDA device"
    from numba import cuda

    if not cuda.is_available():
        return "numba cannot launch CUDA kernels here"
    return None


def resolve(device: str) -> str:
    """"cpu" or "gpu" for a requested device; InputError for an unknown name or a GPU that
    is asked for and cannot be used."""
    if device not in DEVICES:
        raise InputError(f"device {device!r}: expected one of {', '.join(DEVICES)}",
                         source="device")
    if device == "cpu":
        return "cpu"
    problem = gpu_problem()
    if problem is None:
        return "gpu"
    if device == "gpu":
        raise InputError(f"device 'gpu' asked for, but {problem}; expected a usable CUDA GPU "
                         "(or device 'cpu' / 'auto')", source="device")
    return "cpu"


def fit_device(used: str, asked: str, n: int, need: int, unknowns: str) -> str:
    """The device for a solve of n unknowns that needs at least `need` bytes of GPU memory
    (`device_qr.device_bytes`), `used` as `resolve` gave it for the device `asked`: where the
    GPU's free memory is less (a laptop's GPU, or one another process uses), "cpu" with a
    GPUMemoryWarning for "auto" and InputError for "gpu", before anything is computed.
    `unknowns` says what they are ("4300 grains × 15 (octupole)")."""
    if used != "gpu":
        return used
    free = gpu_solver().arrays.free_bytes()
    if free is None or need <= free:
        return "gpu"
    text = (f"{unknowns} = {n} unknowns need at least {need / 2**30:.1f} GiB of GPU memory, "
            f"and the GPU has {free / 2**30:.1f} GiB free")
    if asked == "gpu":
        raise InputError(f"{text}; expected device 'cpu' or 'auto', or fewer unknowns",
                         source="device")
    warnings.warn(f"{text}: solving on the CPU", GPUMemoryWarning, stacklevel=3)
    return "cpu"


@functools.cache
def gpu_solver() -> Any:
    """The GPU's `device_qr.DeviceSolver` (one per process: it holds the last timings)."""
    from smm_daq.analysis.mmt.solver.arrays import CupyArrays
    from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver

    return DeviceSolver(CupyArrays())
