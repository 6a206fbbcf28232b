"""`smm-daq mmt study`, and `--tile-um` / `--scheduler` for `smm-daq mmt invert`.

Wiring (in `smm_daq.cli.mmt.register`): `add_study_command(mmt_sub, make)` with the `mmt`
group's sub-parsers and the synthetic-sample maker (`study.SampleMaker`: the seed's §2.1
model for one `SampleSpec`), and `add_tiling_options(invert_parser)` on the `invert` parser;
the invert handler then calls `tiled_result_or_none(args, data, grains, ...)` and uses its
result when it is not None (the user asked for tiles).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smm_daq.analysis.mmt.study.grid import (
    DEFAULT_HEIGHT_UM,
    DEFAULT_SENSOR_UM,
    TABLE1_DENSITIES_PER_MM3,
    TABLE1_INTERVALS_UM,
    TABLE1_NOISE_NT,
    TABLE1_REPEATS,
    TABLE1_SURFACES_UM,
    TABLE1_THICKNESSES_UM,
    StudySpec,
    parse_list,
)
from smm_daq.cli.args import positive
from smm_daq.cli.mmt_models import add_directions_option
from smm_daq.errors import InputError

if TYPE_CHECKING:  # Dask, the study's plots and the solver are imported by the commands
    from smm_daq.analysis.grains import GrainSet
    from smm_daq.analysis.mmt.solver.inversion import MMTResult
    from smm_daq.analysis.mmt.study.run import SampleMaker
    from smm_daq.storage.mapdata import MapData

UM = 1e-6
MAX_WORKERS = 256
MAX_STUDY_HEIGHT_UM = 1e4
MAX_REPEATS = 1000
MAX_STUDY_SENSORS = 25_000_000  # the 1 µm grid of the largest sample
MAX_STUDY_GRAINS = 100_000


def _csv(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def add_dask_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address (e.g. tcp://host:8786); default: a local "
                             "cluster of --workers processes on this machine")
    parser.add_argument("--workers", type=int, default=2,
                        help="workers of the local cluster (default 2, one core each)")


def scheduler_address(args: argparse.Namespace) -> str | None:
    """`--scheduler`, or None for a local cluster; refused when given empty (an unset shell
    variable, `--scheduler=$ADDR`, would otherwise run locally without a word)."""
    if args.scheduler is not None and not args.scheduler.strip():
        raise InputError(f"--scheduler is {args.scheduler!r}; expected the address of a "
                         "running Dask scheduler, e.g. tcp://host:8786, or no --scheduler for "
                         "a local cluster")
    return args.scheduler


def add_tiling_options(parser: argparse.ArgumentParser) -> None:
    """`--tile-um` (and the Dask options) for `mmt invert`."""
    parser.add_argument("--tile-um", type=float, metavar="SIZE",
                        help="invert in overlapping tiles of about SIZE × SIZE µm on Dask (for "
                             "scans too large for one machine's memory)")
    add_dask_options(parser)


def tiled_result_or_none(args: argparse.Namespace, data: MapData, grains: GrainSet, *,
                         height: float, sensor_size: tuple[float, float],
                         sigma: float | None) -> MMTResult | None:
    """The tiled inversion when `--tile-um` was given (progress on stderr), else None."""
    if not 1 <= args.workers <= MAX_WORKERS:
        raise InputError(f"--workers is {args.workers}; expected 1 to {MAX_WORKERS}")
    scheduler = scheduler_address(args)
    if args.tile_um is None:
        if scheduler is not None:
            raise InputError("--scheduler needs --tile-um; expected both, or neither")
        return None
    from smm_daq.analysis.mmt.tiles.cluster import open_client, stderr_progress
    from smm_daq.analysis.mmt.tiles.tiled import invert_tiled

    tile = positive("--tile-um", args.tile_um) * UM
    steps = [abs(float(a[1] - a[0])) for a in (data.x, data.y) if a.size > 1]
    span = max(float(np.ptp(data.x)), float(np.ptp(data.y)), *steps, 0.0)
    if not (max(steps, default=0.0) * 4 <= tile <= max(span, 1e-9) * 2):
        raise InputError(f"--tile-um is {args.tile_um!r}; expected a tile of at least 4 grid "
                         f"steps ({4 * max(steps, default=0.0) / UM:g} µm) and at most twice "
                         f"the map ({2 * span / UM:g} µm)")
    progress = stderr_progress()
    with open_client(scheduler, n_workers=args.workers) as client:
        return invert_tiled(data, grains, tile=tile, height=height, sensor_size=sensor_size,
                            sigma=sigma, client=client, progress=progress,
                            info=lambda text: print(text, file=sys.stderr, flush=True))


def add_study_command(mmt_sub: argparse._SubParsersAction, make: SampleMaker) -> None:
    """`smm-daq mmt study` in the `mmt` group, drawing samples with `make`."""
    p = mmt_sub.add_parser(
        "study", help="the parameter study of seed 001 (Table 1) on Dask",
        description="Synthetic samples for every model of seed 001's Table 1 (or the subset "
                    "given), inverted with uncertainties; writes the statistics behind the "
                    "seed's Figures 4 and 5 (study.csv, study.json) and their plots (PNG). "
                    "A local cluster starts only as many --workers as the densest samples' "
                    "tasks fit at once in the memory available; a --scheduler's workers are "
                    "checked against their memory limits before anything is written.")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the results")
    p.add_argument("--surface-um", default=_csv(TABLE1_SURFACES_UM),
                   help="side(s) of the square sample surface, µm (default: Table 1's %(default)s)")
    p.add_argument("--thickness-um", default=_csv(TABLE1_THICKNESSES_UM),
                   help="sample thickness(es), µm (default: Table 1's %(default)s)")
    p.add_argument("--densities-per-mm3", default=_csv(TABLE1_DENSITIES_PER_MM3),
                   help="grain densities, grains per mm³ (default: Table 1's %(default)s)")
    p.add_argument("--intervals-um", default=_csv(TABLE1_INTERVALS_UM),
                   help="sampling intervals, whole µm, sub-sampled from the 1 µm grid "
                        "(default: Table 1's %(default)s)")
    p.add_argument("--noise-nT", default=_csv(TABLE1_NOISE_NT),
                   help="noise levels (SD), nT (default: Table 1's %(default)s)")
    p.add_argument("--repeats", type=int, default=TABLE1_REPEATS,
                   help=f"runs per model (default {TABLE1_REPEATS})")
    p.add_argument("--seed", type=int, default=1,
                   help="random seed of the study (default %(default)s)")
    p.add_argument("--height-um", type=float, default=DEFAULT_HEIGHT_UM,
                   help=f"sensor plane above the sample top, µm (default {DEFAULT_HEIGHT_UM:g})")
    p.add_argument("--sensor-um", type=float, default=DEFAULT_SENSOR_UM,
                   help=f"side of the square sensor, µm; 0 for a point sensor (default "
                        f"{DEFAULT_SENSOR_UM:g}, the seed's)")
    add_directions_option(p)
    add_dask_options(p)
    p.set_defaults(func=_study, sample_maker=make)


def _check_size(spec: StudySpec, seed: int) -> None:
    """Refuse a study no machine could run before any work starts: each sample's grains and
    1 µm grid bounded, repeats and noise sensible."""
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed is {seed}; expected a whole number in [0, 2**63)")
    if max(spec.noise_nT) > 1e9:
        raise InputError(f"--noise-nT is {_csv(spec.noise_nT)}; expected levels up to 1e9 nT")
    if max(spec.thicknesses_um) > max(spec.surfaces_um) * 10:
        raise InputError(f"--thickness-um is {_csv(spec.thicknesses_um)}; expected at most ten "
                         f"times the largest surface ({max(spec.surfaces_um):g} µm)")
    side = max(spec.surfaces_um)
    if side + 1 > math.sqrt(MAX_STUDY_SENSORS):
        raise InputError(f"--surface-um is {_csv(spec.surfaces_um)}; expected sides up to "
                         f"{math.sqrt(MAX_STUDY_SENSORS) - 1:g} µm ({MAX_STUDY_SENSORS:,} "
                         "sensors on the 1 µm grid)")
    if spec.sensor_um > side:
        raise InputError(f"--sensor-um is {spec.sensor_um:g}; expected at most the surface "
                         f"({side:g} µm)")
    grains = side**2 * max(spec.thicknesses_um) * max(spec.densities_per_mm3) * 1e-9
    if grains > MAX_STUDY_GRAINS:
        raise InputError(f"--densities-per-mm3 {_csv(spec.densities_per_mm3)} in the largest "
                         f"sample makes {grains:.3g} grains; expected at most "
                         f"{MAX_STUDY_GRAINS:,}")
    if max(spec.intervals_um) > side:
        raise InputError(f"--intervals-um is {_csv(spec.intervals_um)}; expected intervals up "
                         f"to the surface ({side:g} µm)")


def _at_least_zero(option: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"{option} is {value!r}; expected a number >= 0 (0 for a point sensor)")
    return value


def _study(args: argparse.Namespace) -> int:
    from smm_daq.analysis.mmt.study.budget import check_workers, study_workers
    from smm_daq.analysis.mmt.study.run import run_study
    from smm_daq.analysis.mmt.tiles.cluster import open_client, stderr_progress, worker_memory

    if not 1 <= args.workers <= MAX_WORKERS:
        raise InputError(f"--workers is {args.workers}; expected 1 to {MAX_WORKERS}")
    if not 1 <= args.repeats <= MAX_REPEATS:
        raise InputError(f"--repeats is {args.repeats}; expected 1 to {MAX_REPEATS}")
    if not (math.isfinite(args.height_um) and 0 < args.height_um <= MAX_STUDY_HEIGHT_UM):
        raise InputError(f"--height-um is {args.height_um!r}; expected a number in (0, "
                         f"{MAX_STUDY_HEIGHT_UM:g}] µm")
    spec = StudySpec(
        surfaces_um=parse_list("--surface-um", args.surface_um),
        thicknesses_um=parse_list("--thickness-um", args.thickness_um),
        densities_per_mm3=parse_list("--densities-per-mm3", args.densities_per_mm3),
        intervals_um=parse_list(  # type: ignore[arg-type]
            "--intervals-um", args.intervals_um, integer=True),
        noise_nT=parse_list("--noise-nT", args.noise_nT),
        repeats=args.repeats,
        seed=args.seed,
        height_um=args.height_um,
        sensor_um=_at_least_zero("--sensor-um", args.sensor_um),
        directions=args.directions,
    )
    _check_size(spec, args.seed)
    scheduler = scheduler_address(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; expected a directory")
    # a scheduler's workers are checked against their own memory limits once connected
    workers = args.workers if scheduler is not None else study_workers(
        spec, args.workers, info=lambda text: print(text, file=sys.stderr, flush=True))
    with open_client(scheduler, n_workers=workers) as client:
        check_workers(spec, worker_memory(client, lambda text: print(
            f"smm-daq: warning: {text}", file=sys.stderr, flush=True)))
        out.mkdir(parents=True, exist_ok=True)
        written = run_study(spec, out, make=args.sample_maker, client=client,
                            progress=stderr_progress())
    print(json.dumps({k: str(v) for k, v in written.items()}, indent=1))
    return 0
