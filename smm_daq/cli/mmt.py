"""`smm-daq mmt invert | synth | study | export` and `smm-daq import mmt-scan | mpe`.

`register` adds the `mmt` group; other modules extend it through its sub-parsers
(`smm_daq.cli.mmt_study`: `mmt study`, and `--tile-um` / `--scheduler` on `mmt invert`;
`smm_daq.cli.mmt_export`: `mmt export`;
`smm_daq.cli.mmt_models`: point grains, grain models, joint inversions and masks on `mmt invert`,
point-source samples on `mmt synth`, and `import mpe`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from smm_daq.analysis.mmt.formats.community import MIN_M
from smm_daq.analysis.mmt.formats.scan_import import IMPORT_OVERWRITE_HELP
from smm_daq.analysis.mmt.study.grid import DEFAULT_HEIGHT_UM, DEFAULT_SENSOR_UM
from smm_daq.articles import with_article
from smm_daq.cli.args import (
    SESSION_OUT_HELP,
    derived_entry_name,
    distinct_outputs,
    entry_name,
    entry_to_read,
    floats,
    invoked_command,
    output_file,
    outputs_apart,
    positive,
    session_file,
    within,
)
from smm_daq.cli.mmt_export import add_export_command
from smm_daq.cli.mmt_models import (
    GRAIN_FORMATS,
    SD_FROM,
    SENSOR_SIZE_HELP,
    add_import_mpe,
    add_invert_options,
    add_synth_options,
    dragonfly_options_only_for_dragonfly,
    invert_models,
    misfit_parameters,
    refuse_z_down_height,
    registration,
    sd_from,
    summary_line,
    synth_points,
    synthetic_provenance,
    uses_models,
)
from smm_daq.cli.mmt_study import add_study_command, add_tiling_options, tiled_result_or_none
from smm_daq.cli.warning_text import warning_line
from smm_daq.errors import InputError
from smm_daq.storage.limits import MAX_MAP_PIXELS
from smm_daq.thread_warnings import recorded

if TYPE_CHECKING:  # the analysis (numba, scipy) and storage are imported by the commands
    from smm_daq.analysis.grains import GrainSet
    from smm_daq.analysis.mmt.study.grid import SampleSpec

UM = 1e-6
NT = 1e-9
# What `mmt synth` can make on one machine (the seed's largest study model is 500 µm a side).
SYNTH_MIN_UM = 1e-3
SYNTH_MAX_SIZE_UM = 1e5
SYNTH_MAX_POINTS = MAX_MAP_PIXELS  # a map it writes is read back
SYNTH_MAX_GRAINS = 1_000_000


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Warnings (overlapping grains, a singular system) as one line each on stderr, another
    library's labelled with its origin (`warning_line`): this thread's (`recorded`), another
    thread's left as they were."""
    with recorded() as caught:
        try:
            yield
        finally:
            for w in caught:
                print(warning_line(w), file=sys.stderr)


def _sensor_size(text: str | None, fallback: tuple[float, float] | None,
                 where: str | None = None) -> tuple[float, float]:
    """The sensor's (W, L) in m: --sensor-size-um, else `fallback` (the entry's, at `where`).
    A side under MIN_M is refused: the point models divide by the area, which a width of
    1e-300 m makes 0 (a ZeroDivisionError) or a few of them infinite."""
    if text is None:
        size = fallback if fallback is not None else (0.0, 0.0)
        if any(0 < side < MIN_M for side in size):
            raise InputError(f"the sensor size is {list(size)!r} m; expected 0 (a point sensor) "
                             f"or at least {MIN_M:g} m a side: give --sensor-size-um",
                             source=where)
        return size
    w, l = floats("--sensor-size-um", text, 2)
    if not (w == l == 0 or (MIN_M / UM <= w <= 1e6 and MIN_M / UM <= l <= 1e6)):
        raise InputError(f"--sensor-size-um is {text!r}; expected W,L both in "
                         f"[{MIN_M / UM:g}, 1e6] µm, or 0,0 for a point sensor")
    return w * UM, l * UM


def _invert(args: argparse.Namespace) -> int:
    from smm_daq.analysis.mmt.grain_shaping import shaped_grains
    from smm_daq.analysis.mmt.masks import NO_MASK
    from smm_daq.analysis.mmt.result_file import (
        grain_parameters,
        write_result_csv,
        write_result_entry,
    )
    from smm_daq.analysis.mmt.result_params import tile_parameters
    from smm_daq.analysis.mmt.solver.device import resolve
    from smm_daq.analysis.mmt.solver.inversion import invert_map
    from smm_daq.analysis.mmt.solver.misfit import residual_misfit
    from smm_daq.analysis.subtract_inputs import read_source
    from smm_daq.cli.inversion_progress import InversionProgress, say
    from smm_daq.cli.maps import say_if_unfinished
    from smm_daq.storage.nexus import check_new_entry, read_sensor_thickness

    masks = [("--mask", m) for m in args.mask or () if m != NO_MASK]
    outputs_apart((("--out", args.out), ("--library-out", args.library_out)),
                  (("--grains", args.grains), *masks))
    dragonfly_options_only_for_dragonfly(args)
    if args.tile_um is not None and args.device == "gpu":  # the tiles solve on the CPU
        raise InputError("--device is 'gpu' with --tile-um; the tiled inversion computes on "
                         "the CPU (its Dask workers): expected --device auto or cpu with "
                         "--tile-um, or no --tile-um to invert on the GPU")
    out = output_file("--out", args.out, overwrite=args.overwrite)
    if uses_models(args):
        return invert_models(args)
    device = resolve(args.device)  # a GPU asked for and not usable: refused, saying why
    entry = args.entry[0]
    data = read_source(args.file, entry)  # a measured map: never a model's nor a residual
    say_if_unfinished(args.file, entry)
    thickness = read_sensor_thickness(args.file, entry)
    if thickness > 0 and args.sensor_thickness_um is None:
        raise InputError(f"entry '{entry}' of {args.file} was measured by a sensor "
                         f"{thickness / UM:g} µm thick, and the cuboid model has point and "
                         "area sensors only; expected --model dipole, quadrupole or octupole "
                         "(point grains at the cuboid grains' centroids), or "
                         "--sensor-thickness-um 0 to treat the sensor as an area")
    refuse_z_down_height(args.height_um)
    height = positive("--height-um", floats("--height-um", args.height_um, 1)[0]) * UM \
        if args.height_um is not None else data.height
    if height is None:
        raise InputError(f"entry '{entry}' of {args.file} has no sensor height; expected "
                         "one in the entry or --height-um")
    size = _sensor_size(args.sensor_size_um, data.sensor_size,
                        f"{args.file}, entry '{entry}'")
    if not SYNTH_MIN_UM * UM <= height <= 1.0:
        given = (f"--height-um is {args.height_um!r}" if args.height_um is not None else
                 f"entry '{entry}' of {args.file} has a sensor height of {height / UM:g} µm "
                 "(give --height-um)")
        raise InputError(f"{given}; expected a number in [{SYNTH_MIN_UM:g}, 1e6] µm")
    sigma = within("--sigma-nT", floats("--sigma-nT", args.sigma_nT, 1)[0], 1e-9, 1e9, " nT") \
        * NT if args.sigma_nT is not None else None
    choice = sd_from(args)
    noise = sigma  # the residual is set against it
    if choice == "residual":
        sigma = None
    within("--damping", args.damping, 0.0, 1e6, " (relative to QᵀQ's mean diagonal)")
    if args.tile_um is not None and args.damping:  # the tiles' solves are undamped
        raise InputError(f"--damping is {args.damping!r} with --tile-um; the tiled inversion "
                         "is undamped: expected no --damping (or 0) with --tile-um, or no "
                         "--tile-um for a damped inversion")
    name = args.result_entry or derived_entry_name(entry, "_mmt", "--result-entry")
    check_new_entry(args.file, name, (entry,), overwrite=args.overwrite)  # before the work
    with _warnings_to_stderr():
        grains, shaped = shaped_grains(args.grains, args.grain_format,  # cuboids
                                       registration(args))
        result = tiled_result_or_none(args, data, grains, height=height, sensor_size=size,
                                      sigma=sigma)
        if result is None:
            shown = InversionProgress()
            result = invert_map(data, grains, height=height, sensor_size=size, sigma=sigma,
                                damping=args.damping, device=device, progress=say,
                                on_block=shown, on_merge=shown.merge)
    table = result.table()
    misfit = residual_misfit(result, (noise,))
    write_result_csv(out, table)
    write_result_entry(args.file, name, entry, result, table,
                       {"command": invoked_command(),
                        **grain_parameters(args.grains, args.grain_format),
                        **shaped, **misfit_parameters(choice, misfit),
                        **tile_parameters(None if args.tile_um is None else args.tile_um * UM)},
                       overwrite=args.overwrite)
    print(summary_line(result, table, "cuboid", 1,
                       f"results in {args.out} and entry '{name}' of {args.file}",
                       misfit=misfit))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from smm_daq.analysis.grains import write_grains_csv
    from smm_daq.analysis.mmt import synth
    from smm_daq.cli.inversion_progress import say_if_compiling
    from smm_daq.storage.nexus import write_map_entry

    distinct_outputs(("--out", args.out), ("--grains-out", args.grains_out),
                     ("--truth-out", args.truth_out))
    session_file("--out", args.out)
    output_file("--grains-out", args.grains_out, overwrite=args.overwrite)
    output_file("--truth-out", args.truth_out, overwrite=args.overwrite)
    sx, sy = floats("--size-um", args.size_um, 2)
    for value in (sx, sy):
        within("--size-um", value, SYNTH_MIN_UM, SYNTH_MAX_SIZE_UM, " µm")
    within("--thickness-um", args.thickness_um, SYNTH_MIN_UM, SYNTH_MAX_SIZE_UM, " µm")
    within("--height-um", args.height_um, SYNTH_MIN_UM, SYNTH_MAX_SIZE_UM, " µm")
    within("--step-um", args.step_um, SYNTH_MIN_UM, min(sx, sy), " µm (at most the size)")
    nx, ny = (_synth_side(side, args.step_um) for side in (sx, sy))
    if nx * ny > SYNTH_MAX_POINTS:
        raise InputError(f"--step-um {args.step_um:g} over --size-um {args.size_um} makes "
                         f"{nx:,} × {ny:,} points; expected at most {SYNTH_MAX_POINTS:,}")
    within("--density-per-mm3", args.density_per_mm3, 1e-3, 1e9, " grains per mm³")
    grains = args.density_per_mm3 * sx * sy * args.thickness_um * 1e-9
    if grains > SYNTH_MAX_GRAINS:
        raise InputError(f"--density-per-mm3 {args.density_per_mm3:g} in "
                         f"{with_article(f'{sx:g}')} × {sy:g} × "
                         f"{args.thickness_um:g} µm sample makes {grains:.3g} grains; expected "
                         f"at most {SYNTH_MAX_GRAINS:,}")
    within("--noise-nT", args.noise_nT, 0.0, 1e9, " nT")
    if not 0 <= args.seed < 2**63:
        raise InputError(f"--seed is {args.seed}; expected a whole number in [0, 2**63)")
    size = _sensor_size(args.sensor_size_um, (DEFAULT_SENSOR_UM * UM, DEFAULT_SENSOR_UM * UM))
    if args.model != "cuboid":
        return synth_points(args, sx, sy, size)
    say_if_compiling("cuboid")
    rng = np.random.default_rng(args.seed)
    sample = synth.make_sample((sx * UM, sy * UM), args.thickness_um * UM, args.density_per_mm3,
                               rng, args.directions)
    data = synth.scan(sample, height=args.height_um * UM, step=args.step_um * UM,
                      sensor_size=size, noise=args.noise_nT * NT, rng=rng, name=args.name)
    write_map_entry(args.out, data, kind="synthetic", overwrite=args.overwrite,
                    **synthetic_provenance(args))
    write_grains_csv(args.grains_out, sample.grains)
    synth.write_truth_csv(args.truth_out, sample)
    print(f"{sample.grains.n_grains} grains ({sample.grains.cuboids.shape[0]} cuboids); scan "
          f"{data.bz.shape[1]} × {data.bz.shape[0]} in entry '{args.name}' of {args.out}; "
          f"grains in {args.grains_out}, truth in {args.truth_out}")
    return 0


def _synth_side(size_um: float, step_um: float) -> int:
    """The points along one side of `mmt synth`'s scan, as its grid is laid (`synth.scan`:
    from 0 to the size and half a step, in m)."""
    step = step_um * UM
    return math.ceil((size_um * UM + 0.5 * step) / step)


def _import_mmt_scan(args: argparse.Namespace) -> int:
    from smm_daq.analysis.mmt.formats.scan_import import import_scan

    session_file("--out", args.out)
    data = import_scan("mmt-scan", args.map, args.params, args.out, args.name,
                       overwrite=args.overwrite)
    print(f"{data.bz.shape[1]} × {data.bz.shape[0]} map into entry '{args.name}' of {args.out}")
    return 0


def study_sample(spec: SampleSpec, rng: np.random.Generator
                 ) -> tuple[GrainSet, np.ndarray]:
    """The study's sample maker (`synth.study_sample`), imported when a study runs."""
    from smm_daq.analysis.mmt import synth

    return synth.study_sample(spec, rng)


def _add_invert(mmt_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = mmt_sub.add_parser("invert", help="per-grain magnetizations with uncertainties",
                           description="Least-squares MMT inversion of a Bz map entry with "
                                       "micro-CT grains; writes a CSV and a new entry.")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.add_argument("--entry", required=True, type=entry_to_read, action="append",
                   help="the map entry to invert; repeated, the scans inverted jointly")
    p.add_argument("--grains", required=True, metavar="GRAINS",
                   help="grain file: CSV grain,x_um,y_um,z_um,dx_um,dy_um,dz_um (full edges, "
                        "z up); the cuboid library's text (mmt); x y z volume label in m, z up "
                        "with the sample top at 0 (points); the multipole library's NPZ "
                        "(mpe); a Dragonfly connected-components CSV (dragonfly)")
    p.add_argument("--grain-format", choices=GRAIN_FORMATS, default="cuboids",
                   help="default cuboids (csv is the same)")
    add_invert_options(p)
    p.add_argument("--sigma-nT", help="noise SD (default: from the residual); a comma list "
                                      "gives one per --entry")
    p.add_argument("--sd-from", choices=SD_FROM,
                   help="the σ of the SDs and the higher-order test: the noise (--sigma-nT) or "
                        "each scan's residual, which holds the model's misfit too (the "
                        "covariance scaled by the reduced chi-square); default: noise where "
                        "--sigma-nT is given, else residual. With residual, --sigma-nT is the "
                        "noise the summary sets the residual against")
    p.add_argument("--height-um", help="sensor height above the sample top, µm, > 0 (z up; "
                                       "default: the entry's); a comma list gives one per "
                                       "--entry")
    p.add_argument("--sensor-size-um", metavar="W,L",
                   help=f"{SENSOR_SIZE_HELP} (default: the entry's; 0,0 a point)")
    p.add_argument("--damping", type=float, default=0.0,
                   help="Tikhonov damping, relative to the mean diagonal of QᵀQ of each "
                        "multipole order (default 0; not with --tile-um: the tiles are "
                        "undamped); damped, the SDs leave out the bias towards 0")
    p.add_argument("--out", required=True, metavar="RESULT.csv",
                   help="the per-grain table to write (CSV), beside the result entry")
    p.add_argument("--result-entry", type=entry_name,
                   help="name of the new entry (default ENTRY_mmt)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing result entry and an existing --out file")
    p.set_defaults(func=_invert)
    return p


def _add_synth(mmt_sub: argparse._SubParsersAction) -> None:
    p = mmt_sub.add_parser("synth", help="a synthetic sample and its noisy scan (seed 001 §2.1)")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="session file of the scan")
    p.add_argument("--name", default="synthetic", type=entry_name,
                   help="entry name of the scan (default: %(default)s)")
    p.add_argument("--grains-out", required=True, metavar="GRAINS",
                   help="the grains: cuboids CSV, or (point models) an x y z volume label list")
    p.add_argument("--truth-out", required=True, metavar="TRUTH.csv",
                   help="each grain's true magnetization (and coefficients)")
    p.add_argument("--size-um", default="200,200", metavar="X,Y",
                   help="sample surface, µm (default: %(default)s)")
    p.add_argument("--thickness-um", type=float, default=50.0,
                   help="sample thickness, µm (default: %(default)s)")
    p.add_argument("--density-per-mm3", type=float, default=1e4,
                   help="grains per mm³ (default: %(default)g)")
    p.add_argument("--height-um", type=float, default=DEFAULT_HEIGHT_UM,
                   help="sensor above the sample top, µm (default: %(default)s, as mmt "
                        "study's: seed 001's sensor lies on the surface, and the model needs "
                        "it above the grains' tops, which reach it)")
    p.add_argument("--step-um", type=float, default=1.0,
                   help="sampling step, µm (default: %(default)s)")
    p.add_argument("--sensor-size-um", metavar="W,L",
                   help=f"{SENSOR_SIZE_HELP} (default {DEFAULT_SENSOR_UM:g},"
                        f"{DEFAULT_SENSOR_UM:g}: seed 001's {DEFAULT_SENSOR_UM:g} × "
                        f"{DEFAULT_SENSOR_UM:g} µm loop, as mmt study's; 0,0 a point)")
    p.add_argument("--noise-nT", type=float, default=5.0,
                   help="Gaussian noise σ, nT (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the sample and noise (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing entry of that name and existing grain/truth files")
    add_synth_options(p)
    p.set_defaults(func=_synth)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="bring scans of other formats into a session file")
    isub = p.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    q = isub.add_parser("mmt-scan", help="a scan in the MMT community's format",
                        description="Import a scan in the MMT community's format (the cuboid "
                                    "library's Bz text and scan-parameter JSON).")
    q.add_argument("map", metavar="MAP.txt",
                   help="matrix of Bz in T, whitespace- or comma-separated")
    q.add_argument("--params", required=True, metavar="PARAMS.json",
                   help="scan geometry (the cuboid library's scan-parameter JSON)")
    q.add_argument("--out", required=True, metavar="FILE.h5", help=SESSION_OUT_HELP)
    q.add_argument("--name", required=True, type=entry_name, help="entry name")
    q.add_argument("--overwrite", action="store_true", help=IMPORT_OVERWRITE_HELP)
    q.set_defaults(func=_import_mmt_scan)
    add_import_mpe(isub)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mmt` (invert, synth, study, export) and `import mmt-scan`."""
    p = sub.add_parser("mmt", help="micromagnetic tomography: invert, synth, study, export")
    mmt_sub = p.add_subparsers(dest="mmt_command", metavar="COMMAND", required=True)
    invert = _add_invert(mmt_sub)
    add_tiling_options(invert)
    _add_synth(mmt_sub)
    add_study_command(mmt_sub, study_sample)
    add_export_command(mmt_sub)
    _add_import(sub)
