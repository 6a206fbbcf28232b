"""Whether this machine has compiled a model's kernels yet, and how the kernels are called so
that each is compiled only once (`fortran_rows`).

numba compiles the kernels on their first call and keeps them in its cache (`__pycache__`
beside the source, or NUMBA_CACHE_DIR): the first inversion on a machine, or after an
upgrade, waits for that before its first block (`COMPILE_S`), with nothing else to show.
Callers say so beforehand (`first_run_notice`), so that wait is not taken for a hang.

numba judges a cached kernel fresh by the source of the one file that defines it, but a kernel
compiled from `cuboid.py` holds the code of the `forward.py` functions it calls and the values
of the constants it reads from `expansion_terms.py` (and `multipole.py`'s those of the
generated `multipole_kernels.py`; `cuboid_gpu.py`'s CUDA kernels those of `cuboid.py`). An
edit or a `git pull` that changed only such a callee would leave the callers computing with
the old code, silently. So each module whose kernels reach into another module names those
modules (`cache_depends_on`, at its end; a test holds every such module's smm_daq imports to
it): the hash of their sources is joined to the stamp numba keeps in each of its kernels'
cache index, and numba compiles afresh, as after an edit of the module itself, once any of
them changes (and `kernels_cached` says so, as numba reads the same stamp). An unchanged tree
loads the cache as before; the cost at import is hashing a few source files. Where numba
keeps its stamp elsewhere (a numba that moved it) the kernels are not cached at all rather
than possibly stale. NUMBA_CACHE_DIR is the user's, and left alone.

Only the kernels a module defines are stamped, never those it imports (`cuboid.py` imports
`forward.py`'s `_cuboid_constants`): an imported kernel stamped too would have a cache stamp
that depends on which modules a process happened to import before calling it, so a process
that imported `cuboid.py` compiled `forward.py`'s kernels afresh over the cache of one that had
not, while the cached kernels that inline them still held the build before. numba names each
build by a counter that starts again in every process, so the fresh build could take the very
name of the build those cached kernels hold; two builds under one name share one environment
(numba's per-name constants), and the next process boxed the kernel's result from the other
build's constants: `SystemError(... returned a result with an exception set)`, in every
process until the cache changed again.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
import sys
from types import ModuleType
from typing import Any

import numpy as np

NOTICE = ("compiling the {what} kernels for this machine (first run only, or the first after "
          "an upgrade: about {seconds} s)")
# About how long numba takes to compile a model's CPU kernels for the paths of a first
# inversion, s: its compile time on one core of an idle machine (numba compiles on one
# thread), from `benchmarks/numba_cold.py` (its CPU seconds), rounded up.
COMPILE_S = {"cuboid": 50, "multipole": 30}


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
    if kernels_cached(module):
        return None
    seconds = COMPILE_S["cuboid" if model == "cuboid" else "multipole"]
    return NOTICE.format(what=f"{model} model's", seconds=seconds)


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


def _sources_hash(names: tuple[str, ...]) -> str:
    """The hash of the source files of the (imported) modules `names`, in that order."""
    digest = hashlib.sha256()
    for name in names:
        path = getattr(importlib.import_module(name), "__file__", None)
        if path is None:  # a namespace or built-in module has no source to change
            continue
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def cache_depends_on(module_name: str, *dependencies: str) -> None:
    """Make numba's on-disk cache of every cached kernel defined (not merely imported) at the
    top level of module `module_name` stale whenever the source of one of the modules
    `dependencies` (the modules whose functions or constants its kernels compile in) changes,
    as it is when the module's own source does. Called at the end of the module, before any
    kernel is run."""
    stamp = _sources_hash(tuple(sorted(dependencies)))
    for kernel in vars(sys.modules[module_name]).values():
        cache = getattr(kernel, "_cache", None)
        if not hasattr(kernel, "py_func") or not hasattr(cache, "disable"):
            continue  # not a kernel
        if kernel.py_func.__module__ != module_name:
            continue  # imported: stamped (if at all) by the module that defines it
        cache_file = getattr(cache, "_cache_file", None)
        if hasattr(cache_file, "_source_stamp"):
            cache_file._source_stamp = (cache_file._source_stamp, stamp)
        else:  # not cached, or numba keeps its stamp elsewhere: compiled every run, not stale
            cache.disable()
