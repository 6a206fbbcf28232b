"""How long the numeric libraries' idle worker threads spin before they sleep: set by the
`smm-daq` command (and the benchmarks, to time what it runs) before those libraries load.

An MMT inversion alternates numba's parallel kernels with LAPACK calls (the QR) on the same
cores, and each library's threads, idle, spin for a while in case more work comes:

- OpenBLAS's for 2^28 cycles (about 0.1 s) after each call. That spinning took a quarter
  of the cores (2 cores, the 200 × 200 × 50 µm sample of benchmarks/mmt_scale.py: Green +
  QR 3.2 s, against 2.3 s at 2^20 cycles, and the QR alone no slower).
- GNU OpenMP's (numba's threading layer) for 300,000 rounds, 8 to 15 ms of a core here,
  after each kernel. An inversion runs 8 kernels per block of sensors (5 for its rows of Q,
  3 for the fitted map), and the QR's LAPACK threads, the next kernel on a machine other
  processes load, and those processes waited for that core: on the 100 × 100 × 30 µm
  sample of benchmarks/mmt_scale.py (2 blocks, 2 cores loaded 5 to 6 deep by other work)
  an inversion took 0.21 to 0.28 s of CPU, against 0.11 to 0.13 s with them passive, and
  its median time 0.31 to 0.83 s against 0.11 to 0.33 s. Passive, a thread sleeps at once
  and is woken for the next kernel (tens of µs).

A value the user set is kept (for OpenMP also GOMP_SPINCOUNT, which libgomp takes first).
"""

from __future__ import annotations

import os


def quiet_idle_threads() -> None:
    """Sets OPENBLAS_THREAD_TIMEOUT=20 and OMP_WAIT_POLICY=PASSIVE where the user has not
    chosen; call before NumPy loads OpenBLAS (OpenMP's is read when numba first starts its
    threads)."""
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
