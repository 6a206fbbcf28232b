"""Whether this machine has compiled a model's kernels yet, and how the kernels are called so
that each is compiled only once (`fortran_rows`).

numba compiles the kernels on their first call and keeps them in its cache (`__pycache__`
beside the source, or NUMBA_CACHE_DIR): the first inversion on a machine, or after an
upgrade, waits a minute or more before its first block, with nothing else to show. Callers
say so beforehand (`first_run_notice`), so that wait is not taken for a hang.
"""

from __future__ import annotations

import pickle
from types import ModuleType
from typing import Any

import numpy as np

NOTICE = ("compiling the {what} kernels for this machine: its first run only (or the first "
          "after an upgrade), a minute or more before the first block")


def _fresh_overloads(kernel: Any) -> dict | None:
    """The compiled versions numba's cache holds for the kernel, as numba itself judges them:
    none ({}) when its index is missing, from another numba version or made for another
    version of the kernel's source; None where the cache cannot be read as numba keeps it."""
    load = getattr(getattr(getattr(kernel, "_cache", None), "_cache_file", None),
                   "_load_index", None)
    if load is None:
        return None
    try:
        overloads = load()
    except (OSError, EOFError, ValueError, pickle.UnpicklingError):  # numba compiles again
        return {}
    return overloads if isinstance(overloads, dict) else None


def _top_level_kernels(module: ModuleType) -> list[Any]:
    """The module's parallel kernels: the ones called from Python, each cached on its own
    (the helpers they inline are compiled into them). Told by the dispatcher's own options
    rather than by numba's internal class, so a numba that moves it still imports this."""
    return [k for k in vars(module).values()
            if hasattr(k, "py_func")
            and isinstance(getattr(k, "targetoptions", None), dict)
            and k.targetoptions.get("parallel")]


def kernels_cached(*modules: ModuleType) -> bool:
    """False when no top-level kernel of `modules` has a cache numba would load (made by this
    numba version since the kernel's source last changed): the next call compiles them.
    True otherwise, where it cannot be told, and where there are no kernels to compile
    (NUMBA_DISABLE_JIT leaves plain functions)."""
    kernels = [kernel for module in modules for kernel in _top_level_kernels(module)]
    if not kernels:
        return True
    for kernel in kernels:
        overloads = _fresh_overloads(kernel)
        if overloads is None or overloads:
            return True
    return False


def first_run_notice(model: str) -> str | None:
    """What to tell the user before the CPU kernels of grain model `model` ("cuboid", or a
    multipole model) are called, or None when they are compiled already."""
    from smm_daq.analysis.mmt.models import cuboid, multipole

    module = cuboid if model == "cuboid" else multipole
    return None if kernels_cached(module) else NOTICE.format(what=f"{model} model's")


def fortran_rows(out: np.ndarray) -> np.ndarray:
    """Where a block kernel writes rows meant for `out`: `out` itself when numba types it
    Fortran-ordered (as the QR's blocks are), else a new Fortran-ordered array to be copied
    into `out` (`rows[:len(out)]`). numba compiles a kernel once per layout of its arguments
    (C, Fortran or strided), each the better part of a minute for the cuboid model's kernels
    on 2 cores; with one layout each is compiled once. One row is C- and Fortran-ordered at
    once, which numba types C, so it gets two (the kernels write only the rows of their
    sensors)."""
    if out.flags.f_contiguous and not out.flags.c_contiguous:
        return out
    return np.empty((max(out.shape[0], 2), out.shape[1]), order="F")
