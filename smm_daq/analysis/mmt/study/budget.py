"""How many samples of a parameter study may be inverted at once in this machine's memory.

Each solve checks the memory available when it starts (`solver.memory`), but a local cluster's
workers start theirs side by side: each sees the memory the others have not taken yet, and
together they can exceed it, so the system kills the study hours in. The study is therefore
sized before it starts: samples run densest first, so the workers' solves can hold at worst the
needs of as many of the densest samples at once. A sample's need is `memory.solve_bytes` for the
grains its density gives in its volume (what the seed's sample maker aims at) and the block of
rows of its finest interval; the Green's model and the maps beside it are not counted, as the
solve's own check does not count them.
"""

from __future__ import annotations

from collections.abc import Callable

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver.inversion import DEFAULT_BLOCK
from smm_daq.analysis.mmt.study.grid import SampleSpec, StudySpec, base_points, subsample_index
from smm_daq.errors import InputError

GIB = 2**30


def sample_grains(sample: SampleSpec) -> int:
    """The grains a sample is drawn with: its density in its volume (surface² × thickness)."""
    return round(sample.density_per_mm3 * sample.surface_um**2 * sample.thickness_um * 1e-9)


def sample_need(sample: SampleSpec, spec: StudySpec) -> int:
    """Bytes the solve of `sample` holds at its peak (`memory.solve_bytes`): 3 unknowns a grain,
    and a block of rows of its finest interval's map."""
    return memory.solve_bytes(3 * sample_grains(sample), _block_rows(sample, spec))


def _block_rows(sample: SampleSpec, spec: StudySpec) -> int:
    """The rows of a block of the Green's matrix at the sample's finest interval."""
    per_side = subsample_index(base_points(sample.surface_um), min(spec.intervals_um)).size
    return min(DEFAULT_BLOCK, per_side**2)


def _most_grains(block_rows: int, have: int) -> int:
    """The most grains whose solve (3 unknowns each) fits in `have` bytes."""
    lo, hi = 0, 1
    while memory.solve_bytes(3 * hi, block_rows) <= have:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # fits at lo, not at hi
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory.solve_bytes(3 * mid, block_rows) <= have else (lo, mid)
    return lo


def study_workers(spec: StudySpec, workers: int, info: Callable[[str], None] | None = None
                  ) -> int:
    """The workers (at most `workers`) whose solves fit at once in the memory available, said
    through `info` when fewer; InputError, before any work, when not even the densest sample's
    solve alone fits, naming its need, the memory available and the densities that would fit."""
    have = memory.available_bytes()
    if have is None:
        return workers
    samples = spec.samples()
    needs = sorted((sample_need(s, spec) for s in samples), reverse=True)
    if needs[0] > have:
        largest = max(samples, key=lambda s: sample_need(s, spec))
        raise InputError(_refusal(largest, spec, needs[0], have))
    limit = min(workers, len(needs))
    fit = 1
    while fit < limit and sum(needs[:fit + 1]) <= have:
        fit += 1
    if fit == limit:
        return workers
    if info is not None:
        info(f"study: {workers} workers would invert the {limit} densest samples at once, "
             f"needing {sum(needs[:limit]) / GIB:.2f} GiB ({needs[0] / GIB:.2f} GiB for the "
             f"densest), and this machine has {have / GIB:.2f} GiB available: running "
             f"{fit} worker{'s' if fit > 1 else ''}")
    return fit


def _refusal(sample: SampleSpec, spec: StudySpec, need: int, have: int) -> str:
    """Why a study whose `sample` cannot be solved alone in `have` bytes is refused, and the
    densities that would fit."""
    most = _most_grains(_block_rows(sample, spec), have)
    volume_mm3 = sample.surface_um**2 * sample.thickness_um * 1e-9
    return (f"the study's largest sample ({sample.surface_um:g} µm × {sample.surface_um:g} µm, "
            f"{sample.thickness_um:g} µm thick, {sample.density_per_mm3:g} grains/mm³: "
            f"{sample_grains(sample)} grains) needs {need / GIB:.2f} GiB of memory for its "
            f"solve alone, and this machine has {have / GIB:.2f} GiB available; expected at "
            f"most {most} grains a sample: --densities-per-mm3 up to {most / volume_mm3:.4g} "
            "for that surface and thickness, or a smaller --surface-um or --thickness-um")
