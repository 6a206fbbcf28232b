"""The serial and parallel builds of the forward model's kernels are cached apart: a serial
call never runs the parallel build a previous process cached, nor the other way round.

Serial variants are what threads that already run in parallel call; one that ran the parallel
build would launch a parallel kernel from inside another (numba's default threading layer
terminates the process on that). Each process below starts with an empty numba cache of its
own and tells which build ran by whether numba started its thread pool. Compiling is what
these processes cost: they compile the sensor-by-cuboid kernel's two builds, not the field's
too, whose variants are made by the same `_variant` and whose cache indexes are checked apart
below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import smm_daq
from smm_daq.analysis import forward

CALL = r"""
import json, sys
import numba
import numpy as np
from smm_daq.analysis import forward as f

variant = sys.argv[1]
sensors = np.array([[0.0, 0.0, 2e-6], [1e-6, -1e-6, 3e-6]])
cuboids = np.array([[0.0, 0.0, -1e-6, 1e-6, 2e-6, 1e-6]])
ref = f._nearest_sensor_distance(sensors, cuboids)
kernel = np.zeros((2, 1, 3))
getattr(f, "_kernel_" + variant)(sensors, cuboids, 0.0, 0.0, ref, kernel)
try:
    numba.threading_layer()
    threads = True
except ValueError:  # "Threading layer is not initialized": no parallel kernel has run
    threads = False
hits = getattr(f, "_kernel_" + variant).stats.cache_hits.total()
print(json.dumps({"threads": threads, "hits": hits, "kernel": kernel.tolist()}))
"""


def _call(variant: str, cache_dir: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir,
           "PYTHONPATH": str(Path(smm_daq.__file__).parents[1])}  # this checkout's smm_daq
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run([sys.executable, "-c", CALL, variant], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_variant_has_a_cache_index_of_its_own() -> None:
    names = {
        kernel._cache._cache_file._index_name
        for kernel in (forward._kernel_serial, forward._kernel_parallel,
                       forward._field_serial, forward._field_parallel)
    }
    assert len(names) == 4, names


def test_a_cached_build_serves_only_its_own_variant(tmp_path) -> None:
    cache = str(tmp_path / "numba")
    serial = _call("serial", cache)  # compiles the serial builds into the empty cache
    assert not serial["threads"]
    parallel = _call("parallel", cache)  # must compile its own, not load the serial ones
    assert parallel["threads"]
    again = _call("serial", cache)  # the cache now holds both: loads the serial build
    assert again["hits"] == 1
    assert not again["threads"]
    np.testing.assert_allclose(parallel["kernel"], serial["kernel"], rtol=1e-12, atol=0)
    assert again["kernel"] == serial["kernel"]
