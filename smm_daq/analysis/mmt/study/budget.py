"""How many samples of a parameter study may be inverted at once in this machine's memory.

Each solve checks the memory available when it starts (`solver.memory`), but a local cluster's
workers start theirs side by side: each sees the memory the others have not taken yet, and
together they can exceed it, so the system kills the study hours in. The study is therefore
sized before it starts: samples run densest first, so the workers' solves can hold at worst the
needs of as many of the densest samples at once.

A sample's need is all that its task holds at its peak (`run.run_sample`): its 1 µm grid (the
sensors, the noiseless and the noisy map, one noise draw), its grains, and the inversion of its
finest interval's map: the least-squares factor and what the solve's own check counts
(`memory.solve_bytes`), the QR's workspace, the Green's model's arrays (`models.sizes`, and the
copy of its far-field orders made while it is built), what the fitted map keeps of Q's rows
(at most `inversion.KEEP_Q_BYTES`, and never more than the rows themselves) and the map's
per-sensor arrays (sensor positions, data, fitted and residual maps). The grains' cuboids are
known only once drawn: the seed's sample maker merges a grain of d µm into at most about
(d / 0.75 µm)² cuboids, (20 µm²) / (0.75 µm)² ≈ 36 on average over its diameters, so 40 are
counted a grain.
"""

from __future__ import annotations

from collections.abc import Callable

from smm_daq.analysis.mmt.models.sizes import HIGHER_PER_GRAIN, cuboid_model_bytes
from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver.inversion import DEFAULT_BLOCK, KEEP_Q_BYTES
from smm_daq.analysis.mmt.solver.qr_update import panel_width
from smm_daq.analysis.mmt.study.grid import SampleSpec, StudySpec, base_points, subsample_index
from smm_daq.errors import InputError

GIB = 2**30
CUBOIDS_PER_GRAIN = 40  # counted for the seed's sample maker (above)
# doubles per point of the 1 µm grid: x and y of the meshgrid, the sensors (3), the noiseless
# and the noisy map, and the noise draw added to it
GRID_DOUBLES = 8
# doubles per sensor of an inverted map: its data, positions (3) and their index, the data
# column, the fitted and residual values and maps, and the position grids made on the way
SENSOR_DOUBLES = 12
GRAIN_SET_DOUBLES = 10  # per cuboid: its centre and edges, its grain and its magnetization


def sample_grains(sample: SampleSpec) -> int:
    """The grains a sample is drawn with: its density in its volume (surface² × thickness)."""
    return round(sample.density_per_mm3 * sample.surface_um**2 * sample.thickness_um * 1e-9)


def sample_need(sample: SampleSpec, spec: StudySpec) -> int:
    """Bytes the task of `sample` holds at its peak (the module's docstring)."""
    return _need(sample_grains(sample), sample, spec)


def solve_need(grains: int, cuboids: int, sensors: int, area: bool) -> int:
    """Bytes `invert_map` holds at its peak on the CPU for `grains` grains of `cuboids`
    cuboids under a map of `sensors` finite pixels: the solve's own count
    (`memory.solve_bytes`: a block of rows, R and its copy) and the QR's workspace, the
    Green's model (and its orders' copy while built), what is kept of Q's rows for the fitted
    map, and the map's arrays."""
    n = 3 * grains
    rows = min(DEFAULT_BLOCK, sensors)
    panel = min(panel_width(n + 1), n + 1)
    qr_work = 8 * ((panel + rows) * panel + panel * panel)
    kept = min(KEEP_Q_BYTES, 8 * sensors * n)
    model = cuboid_model_bytes(grains, cuboids, area=area, exact=False) \
        + 8 * HIGHER_PER_GRAIN * grains
    return memory.solve_bytes(n, rows) + qr_work + model + kept + 8 * SENSOR_DOUBLES * sensors


def _need(grains: int, sample: SampleSpec, spec: StudySpec) -> int:
    """A sample's need (`sample_need`) were it drawn with `grains` grains."""
    cuboids = CUBOIDS_PER_GRAIN * grains
    grid = base_points(sample.surface_um) ** 2
    return (8 * GRID_DOUBLES * grid + 8 * GRAIN_SET_DOUBLES * cuboids
            + solve_need(grains, cuboids, _sensors(sample, spec), spec.sensor_um > 0))


def _sensors(sample: SampleSpec, spec: StudySpec) -> int:
    """The sensors of the sample's map at its finest interval."""
    return subsample_index(base_points(sample.surface_um), min(spec.intervals_um)).size ** 2


def _most_grains(sample: SampleSpec, spec: StudySpec, have: int) -> int:
    """The most grains the task of a sample like `sample` may hold to fit in `have` bytes."""
    lo, hi = 0, 1
    while _need(hi, sample, spec) <= have:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # fits at lo, not at hi
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _need(mid, sample, spec) <= have else (lo, mid)
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
    most = _most_grains(sample, spec, have)
    volume_mm3 = sample.surface_um**2 * sample.thickness_um * 1e-9
    return (f"the study's largest sample ({sample.surface_um:g} µm × {sample.surface_um:g} µm, "
            f"{sample.thickness_um:g} µm thick, {sample.density_per_mm3:g} grains/mm³: "
            f"{sample_grains(sample)} grains) needs {need / GIB:.2f} GiB of memory for its "
            f"solve alone, and this machine has {have / GIB:.2f} GiB available; expected at "
            f"most {most} grains a sample: --densities-per-mm3 up to {most / volume_mm3:.4g} "
            "for that surface and thickness, or a smaller --surface-um or --thickness-um")


def check_workers(spec: StudySpec, workers: dict[str, tuple[int | None, int]]) -> None:
    """InputError, before any work, when a Dask worker's memory limit cannot hold the samples
    it may invert at once (as many of the densest as it has threads: any sample may go to
    any worker), naming the worker with too little; workers without a limit are not checked.
    `workers`: {address: (memory limit in bytes or None, threads)}."""
    samples = spec.samples()
    needs = sorted((sample_need(s, spec) for s in samples), reverse=True)
    short = [(limit, address, threads) for address, (limit, threads) in workers.items()
             if limit is not None and sum(needs[:threads]) > limit]
    if not short:
        return
    limit, address, threads = min(short)
    at_once = min(threads, len(needs))
    need = sum(needs[:at_once])
    largest = max(samples, key=lambda s: sample_need(s, spec))
    if needs[0] > limit:
        most = _most_grains(largest, spec, limit)
        volume_mm3 = largest.surface_um**2 * largest.thickness_um * 1e-9
        smaller = (f"or at most {most} grains a sample: --densities-per-mm3 up to "
                   f"{most / volume_mm3:.4g} for the largest sample's surface and thickness")
    else:
        smaller = "or fewer threads a worker (dask worker --nthreads)"
    densest = f"{at_once} densest samples" if at_once > 1 else "densest sample"
    if at_once == threads:
        densest += (f", as many as it may invert at once (its {threads} "
                    f"thread{'s' if threads > 1 else ''}),")
    raise InputError(
        f"the Dask worker {address} has a memory limit of {limit / GIB:.2f} GiB, and the "
        f"study's {densest} need{'' if at_once > 1 else 's'} {need / GIB:.2f} GiB "
        f"({needs[0] / GIB:.2f} GiB for the densest: {largest.surface_um:g} µm × "
        f"{largest.surface_um:g} µm, {largest.thickness_um:g} µm thick, "
        f"{largest.density_per_mm3:g} grains/mm³, {sample_grains(largest)} grains); expected "
        f"workers with a memory limit of at least {need / GIB:.2f} GiB (dask worker "
        f"--memory-limit), {smaller}")
