"""Whether an MMT solve on the CPU can fit in this machine's memory, asked before the Green's
matrix and its QR are computed (hours at the lab's scale).

The least-squares factor R of n unknowns is n² doubles, and the covariances need its inverse
as well: 4,300 point grains under the octupole model (64,500 unknowns) need at least 65 GiB,
which no lab PC has. Without this check the process would be refused memory (MemoryError), or
killed by the system, once its Green's matrix had been folded in.
"""

from __future__ import annotations

import os
from pathlib import Path

from smm_daq.analysis.mmt.solver.qr_update import panel_width
from smm_daq.errors import InputError

MEMINFO = Path("/proc/meminfo")


def solve_bytes(n: int, block_rows: int, *, damping: bool = False, triangles: int = 0,
                streams: int = 1) -> int:
    """The least the CPU solve holds at its peak for n unknowns, in bytes: while the Green's
    matrix is folded in, one block of its rows and R of [Q | φ] with its copy, or folded in
    `streams` (`streams.fold`) a block (of block_rows each: `streams.stream_block`), a
    triangle and the QR's workspace each (a panel of the block's rows and one of R's,
    `QRUpdate`), the triangles merged before R is copied; then R and its
    copy scaled to unit columns (inverted in place for the covariances), or with damping the
    stacked factor and the products of the covariance's sandwich besides (about 8 n² in
    all). The SVD fallback for an R singular to working precision needs more (`svd_bytes`),
    which is not counted: whether R is singular is known only once it is made. `triangles`:
    the scans' own R kept throughout beside it (a joint inversion estimating their σ)."""
    squares = (n + 1) ** 2
    if streams == 1:
        folding = block_rows * (n + 1) + 2 * squares
    else:
        panel = panel_width(n + 1)
        folding = streams * (squares + (block_rows + panel) * (n + 1 + panel))
    return 8 * (max(folding, (8 if damping else 2) * squares) + triangles * squares)


def svd_bytes(n: int, driver: str) -> int:
    """Bytes the SVD of a singular n × n R needs beyond R and its scaled copy (which it
    overwrites): U and Vᵀ, and LAPACK's workspace, 3 n² for dgesdd (divide and conquer)
    and a few n for dgesvd (as SciPy sizes them; traced)."""
    return 8 * (n * n * (5 if driver == "gesdd" else 2) + 64 * n)


def available_bytes() -> int | None:
    """Memory the system can give without swapping (Linux's MemAvailable, else its free
    physical pages where `sysconf` says), or None where that is not known."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_solve_fits(n: int, block_rows: int, unknowns: str, *, damping: bool = False,
                     triangles: int = 0) -> None:
    """InputError when `solve_bytes` is more than this machine has available; `unknowns`
    says what they are ("4300 grains × 15 (octupole)")."""
    need = solve_bytes(n, block_rows, damping=damping, triangles=triangles)
    have = available_bytes()
    if have is None or need <= have:
        return
    raise InputError(
        f"{unknowns} = {n} unknowns need at least {need / 2**30:.1f} GiB of memory for the "
        f"least-squares factor and its inverse, and this machine has "
        f"{have / 2**30:.1f} GiB available; expected fewer unknowns: the dipole model (3 a "
        "grain) rather than a higher order, fewer grains (a larger minimum voxel count, or "
        "only those under the scan), or cuboid grains inverted in tiles")
