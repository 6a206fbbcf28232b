"""`smm-daq mmt invert` with point-source grains, multipole models, several scans at once and
masks; `smm-daq mmt synth --model` for point-source samples; `smm-daq import mpe`.

`smm_daq.cli.mmt` adds these options to its parsers and hands an inversion here whenever it
goes beyond one scan of cuboid grains under the cuboid model without a mask.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from smm_daq.analysis.mmt.formats.community import MIN_M
from smm_daq.analysis.mmt.formats.scan_import import IMPORT_OVERWRITE_HELP
from smm_daq.analysis.mmt.study.grid import DIRECTION_DRAWS
from smm_daq.cli.args import (
    SESSION_OUT_HELP,
    derived_entry_name,
    entry_name,
    floats,
    invoked_command,
    output_file,
    session_file,
    within,
)
from smm_daq.errors import InputError

if TYPE_CHECKING:  # the analysis is imported by the commands
    from smm_daq.analysis.mmt.models.multipole import PointGrains
    from smm_daq.analysis.mmt.registration import GrainRegistration
    from smm_daq.analysis.mmt.solver.inversion import MMTResult
    from smm_daq.analysis.mmt.solver.misfit import Misfit

UM = 1e-6
NT = 1e-9
GRAIN_FORMATS = ("cuboids", "csv", "mmt", "points", "mpe", "dragonfly")  # as formats.grains
CUBOID_FORMATS = ("cuboids", "csv", "mmt")
MODEL_CHOICES = ("cuboid", "dipole", "quadrupole", "octupole")
DEVICES = ("auto", "cpu", "gpu")


def unresolved_note(labels: np.ndarray, covariance: np.ndarray, shown: int = 5) -> str:
    """The summary line's words on the grains the map does not determine (infinite SDs), naming
    up to `shown` labels, or "" where there are none: the singular-Q warning only counts them,
    and a grain's magnetization in the table is then a pseudo-inverse's arbitrary value."""
    bad = ~np.all(np.isfinite(covariance), axis=(1, 2))
    if not bad.any():
        return ""
    named = [str(v) for v in labels[bad][:shown]]
    more = f" and {int(bad.sum()) - shown} more" if bad.sum() > shown else ""
    return (f"; {int(bad.sum())} grain(s) unresolved (infinite SDs, magnetization not "
            f"determined): grain {', '.join(named)}{more}")


def beyond_saturation_note(labels: np.ndarray, magnetization: np.ndarray,
                           covariance: np.ndarray, ratio_pct: np.ndarray | None,
                           saturation: float | None = None) -> str:
    """The summary line's words on the grains magnetized beyond the saturation magnetization
    (A/m; None: magnetite's, CROP_MAGNETIZATION; else the one chosen for the crop, as
    `--crop-magnetization-kA-per-m` gives it for another mineral), naming the strongest and
    how many of them an uncertainty ratio < 10 % would select (`ratio_pct`: the table's
    column, the one its filter reads, not computed again, which takes seconds at thousands of
    grains; None, a table without it: computed for those grains alone), or "" where there are
    none. No grain carries more (real remanences lie one to two orders below magnetite's
    saturation), so such a magnetization is some other field
    read into the grain: of grains the micro-CT missed or misplaced, of a misregistration, or
    a grain too deep or small for the map to see. The uncertainty ratio, a statistic of the
    noise alone, does not show it: on the MMT tutorial's QDM scan two of the three grains a
    dipole inversion resolves below 10 % lie at 4 to 6 × 10⁶ kA/m, one of the cuboid
    model's two at 1.2 × 10⁶ kA/m. Grains the map does not
    determine at all are left to `unresolved_note`."""
    from smm_daq.analysis.mmt.formats.dragonfly import CROP_MAGNETIZATION

    limit = CROP_MAGNETIZATION if saturation is None else saturation
    size = np.linalg.norm(magnetization, axis=1)
    over = np.all(np.isfinite(covariance), axis=(1, 2)) & (size > limit)
    if not over.any():
        return ""
    g = int(np.argmax(np.where(over, size, -np.inf)))
    if ratio_pct is None:
        from smm_daq.analysis.mmt.solver.stats import uncertainty_ratio_pct

        selected = int(np.sum(uncertainty_ratio_pct(magnetization[over], covariance[over]) < 10))
    else:
        selected = int(np.sum(over & (np.asarray(ratio_pct) < 10)))
    of_them = f", {selected} of them with uncertainty ratio < 10 %" if selected else ""
    if limit == CROP_MAGNETIZATION:
        what, whose = "magnetite's saturation", "not a magnetite grain's own magnetization"
    else:
        what, whose = ("the saturation magnetization chosen",
                       "more than any grain of that mineral carries")
    return (f"; {int(over.sum())} grain(s) magnetized beyond {what} ({limit / 1e3:g} kA/m), "
            f"up to {size[g] / 1e3:.3g} kA/m (grain {labels[g]}){of_them}: {whose} (grains "
            "the micro-CT missed or misplaced? a grain too deep or small for the map?)")


def recorded_saturation(params: Mapping[str, object]) -> float | None:
    """The saturation magnetization (A/m) a result's shaping parameters record for its crop
    (`crop_magnetization`), None where they record none (magnetite's)."""
    from smm_daq.storage.products import bare

    value = params.get("crop_magnetization")
    return None if value is None else float(bare(value))  # type: ignore[arg-type]


SD_FROM = ("noise", "residual")


def sd_from(args: argparse.Namespace) -> str:
    """`--sd-from`, checked: what the covariance's σ is, "noise" (the --sigma-nT given) or
    "residual" (each scan's residual, misfit included); by default the noise where --sigma-nT
    is given, else the residual (as before the option)."""
    if args.sd_from is None:
        return "noise" if args.sigma_nT is not None else "residual"
    if args.sd_from == "noise" and args.sigma_nT is None:
        raise InputError("--sd-from noise without --sigma-nT; expected the noise SD measured "
                         "(--sigma-nT, e.g. from two repeated scans), or --sd-from residual")
    return args.sd_from


def misfit_remedy(from_residual: bool, option: str = "--sd-from residual", *,
                  tested: bool) -> str:
    """What the misfit note adds of the SDs shown: those of σ from the residual are scaled by
    the misfit already; those of the noise σ can be (`option`, as the caller names it). Either
    way a misfit's structure, unlike noise, still passes for higher orders (said where the
    result has a higher-order test: `tested`)."""
    scaled = ("the SDs here take σ from the residual, so they are scaled by it" if from_residual
              else f"{option} scales the SDs by it")
    higher = " and still passes for higher orders" if tested else ""
    return f" ({scaled}; a misfit is no white noise{higher})"


def misfit_parameters(choice: str, misfit: Misfit | None) -> dict[str, object]:
    """What the result entry records of its σ: `sd_from` (noise or residual) and, where the
    noise is known (given or the residual's floor), `residual_over_noise`, the worst scan's residual
    σ over its noise."""
    out: dict[str, object] = {"sd_from": choice}
    if misfit is not None:
        out["residual_over_noise"] = float(misfit.ratio)
    return out


def summary_line(result: MMTResult, table: dict[str, np.ndarray], model: str, scans: int,
                 written: str, saturation: float | None = None,
                 misfit: Misfit | None = None) -> str:
    """`mmt invert`'s summary line, one shape for every model (cuboid, dipole, ...): the grains
    and the model, the pixels of how many scans, each scan's σ, cond(Q), the grains of
    uncertainty ratio < 10 %, those with resolved higher orders (multipole models), the
    residual against the noise where it is far above it (`misfit`, `misfit.misfit_note`), the
    grains magnetized beyond the saturation magnetization (`saturation`, A/m; None:
    magnetite's), the grains unresolved, then `written` (where the results are)."""
    from smm_daq.analysis.mmt.solver.joint import MultipoleResult
    from smm_daq.analysis.mmt.solver.misfit import misfit_note

    sigmas = getattr(result, "sigmas", ()) or (result.sigma,)
    line = (f"{result.grains.n_grains} grains ({model}) from {result.n_sensors} pixels of "
            f"{scans} scan(s); sigma {', '.join(f'{s / NT:.4g}' for s in sigmas)} nT"
            f"{' (from the residual)' if result.sigma_from_residual else ''}; "
            f"cond(Q) {result.condition_number:.3g}; "
            f"{int(np.sum(table['uncertainty_ratio_pct'] < 10))} grains with uncertainty "
            "ratio < 10 %")
    higher = result.higher_orders() if isinstance(result, MultipoleResult) else None
    if higher is not None:
        line += f"; {int(np.sum(higher[2]))} grains with resolved higher orders (p < 0.05)"
    tested = higher is not None
    line += misfit_note(misfit, misfit_remedy(result.sigma_from_residual, tested=tested),
                        tested=tested)
    line += beyond_saturation_note(result.grains.labels, result.magnetization,
                                   result.covariance, table["uncertainty_ratio_pct"], saturation)
    return f"{line}{unresolved_note(result.grains.labels, result.covariance)}; {written}"


def left_out_note(grains: PointGrains, min_voxels: int, shown: int = 5,
                  options: tuple[str, str] = ("--min-voxels", "--crop-to-scan")) -> str:
    """What of the grain file `mmt invert` leaves out (Dragonfly's specks below --min-voxels,
    grains beyond the crop's reach), naming up to `shown` labels per reason and the option
    that left them out (`options`: as the window names the two), or "": the summary counts
    only the grains inverted."""
    if not grains.left_out:
        return ""
    reasons = {"min_voxels": f"of fewer than {min_voxels} voxels ({options[0]})",
               "crop": "whose field could not reach the scans above their noise "
                       f"({options[1]})"}
    parts = []
    for why, labels in grains.left_out:
        more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
        parts.append(f"{len(labels)} {reasons[why]}: grain "
                     f"{', '.join(str(v) for v in labels[:shown])}{more}")
    total = grains.n_grains + sum(len(labels) for _, labels in grains.left_out)
    return (f"{grains.source}: {grains.n_grains} of {total} grains inverted; left out "
            f"{'; '.join(parts)}")


def add_invert_options(p: argparse.ArgumentParser) -> None:
    """Options of `mmt invert` beyond the cuboid inversion of one scan."""
    p.add_argument("--model", choices=MODEL_CHOICES,
                   help="grain model (default: cuboid for cuboid grains, dipole for point "
                        "grains; cuboid needs cuboid grains)")
    p.add_argument("--mask", action="append", metavar="FILE",
                   help="bad pixels to leave out: .npy (True or 1 = bad), an image of the "
                        "map's shape (black = bad, transparent = kept) or "
                        ".json of rectangles/polygons in µm; one for all entries or one per "
                        "--entry, in order, where 'none' leaves that entry unmasked")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to compute (default auto: a CUDA GPU when one is usable; with "
                        "--tile-um the CPU, and gpu is refused)")
    p.add_argument("--sensor-thickness-um", type=float,
                   help="volume sensors: the sensor's thickness (default: the entry's, else 0)")
    p.add_argument("--library-out", metavar="RESULT.npz",
                   help="point models: also write the results in the multipole library's "
                        "convention (inv_multipole_moments, inv_moments_std)")
    r = p.add_argument_group(
        "registration: grain files in another frame than the scan's, brought into it before "
        "any crop (rotated about the vertical through the origin, then shifted)")
    r.add_argument("--grains-shift-um", metavar="DX,DY[,DZ]",
                   help="add DX, DY (and DZ, z up) in µm to every grain's position")
    r.add_argument("--grains-rotation-deg", type=float, metavar="DEG",
                   help="turn the grains by DEG degrees about the vertical, counter-clockwise "
                        "seen from above (+x towards +y); cuboid grains: 0, 90, 180 or 270")
    r.add_argument("--grains-rotation-origin-um", metavar="X,Y",
                   help="the point (µm, the grain file's frame) the rotation turns about "
                        "(default 0,0)")
    g = p.add_argument_group("point grains (--crop-to-scan: dragonfly, points, mpe; the others: "
                             "dragonfly)")
    g.add_argument("--min-voxels", type=int, default=1,
                   help="drop components of fewer voxels (default 1: keep all)")
    g.add_argument("--z-top-um", type=float,
                   help="CT z of the sample top in µm (default: the top of the highest "
                        "grain, warned of: every grain then comes out too shallow)")
    g.add_argument("--z-down", action="store_true",
                   help="the CT z axis points down into the sample (default: up)")
    g.add_argument("--crop-to-scan", action="store_true",
                   help="point grains (dragonfly, points, mpe): keep only grains whose field "
                        "could reach a tenth of the noise on the scans' sensors (the rectangle "
                        "spanning them whole, at the lowest sensor's height), magnetized to "
                        "--crop-magnetization-kA-per-m in the worst direction; the noise is "
                        "--sigma-nT where given, else each map's noise floor")
    g.add_argument("--crop-magnetization-kA-per-m", type=float, metavar="M",
                   help="with --crop-to-scan: the saturation magnetization the grains' largest "
                        "fields are reckoned at, the most any grain could carry (default "
                        "480, magnetite; 1710 for iron); refused where no noise is known, "
                        "as the crop then goes by distance")


MAX_SHIFT_UM = 1e6  # a metre: the grains' positions are bounded likewise


def registration(args: argparse.Namespace) -> GrainRegistration:
    """The registration options (`registration.GrainRegistration`, in m), checked."""
    return grain_registration(args.grains_shift_um, args.grains_rotation_deg,
                              args.grains_rotation_origin_um)


def grain_registration(shift_um: str | None, rotation_deg: float | None,
                       origin_um: str | None) -> GrainRegistration:
    """The registration the options' values give (--grains-shift-um's and
    --grains-rotation-origin-um's text, --grains-rotation-deg's number; None: not given),
    checked: the MMT tab builds its registration from the arguments it records, here too."""
    from smm_daq.analysis.mmt.registration import GrainRegistration

    shift = (0.0, 0.0, 0.0)
    if shift_um is not None:
        parts = shift_um.split(",")
        values = floats("--grains-shift-um", shift_um, 3 if len(parts) == 3 else 2)
        for v in values:
            within("--grains-shift-um", v, -MAX_SHIFT_UM, MAX_SHIFT_UM, " µm (each of DX,DY[,DZ])")
        shift = (values[0] * UM, values[1] * UM, values[2] * UM if len(values) == 3 else 0.0)
    angle = 0.0
    if rotation_deg is not None:
        angle = within("--grains-rotation-deg", rotation_deg, -360.0, 360.0, " °")
    origin = (0.0, 0.0)
    if origin_um is not None:
        if rotation_deg is None:
            raise InputError("--grains-rotation-origin-um given without --grains-rotation-deg; "
                             "expected the angle to turn the grains by about it")
        ox, oy = floats("--grains-rotation-origin-um", origin_um, 2)
        for v in (ox, oy):
            within("--grains-rotation-origin-um", v, -MAX_SHIFT_UM, MAX_SHIFT_UM, " µm")
        origin = (ox * UM, oy * UM)
    return GrainRegistration(shift, angle, origin)


def uses_models(args: argparse.Namespace) -> bool:
    """Does this inversion need more than the cuboid inversion of one scan?"""
    from smm_daq.analysis.mmt.masks import NO_MASK

    return (len(args.entry) > 1 or any(m != NO_MASK for m in args.mask or ())
            or args.grain_format not in CUBOID_FORMATS
            or (args.model or "cuboid") != "cuboid" or bool(args.sensor_thickness_um)
            or args.library_out is not None)




POINT_FORMATS = ("points", "mpe", "dragonfly")  # --crop-to-scan crops them (as formats.grains)


def dragonfly_options_only_for_dragonfly(args: argparse.Namespace) -> None:
    """Refuse the Dragonfly options with another grain format (they would be ignored), and
    --crop-to-scan with cuboid grains."""
    given = [option for option, value in (("--min-voxels", args.min_voxels != 1),
                                          ("--z-top-um", args.z_top_um is not None),
                                          ("--z-down", args.z_down)) if value]
    if given and args.grain_format != "dragonfly":
        raise InputError(f"{', '.join(given)} given with --grain-format {args.grain_format}; "
                         "expected them only with --grain-format dragonfly")
    if args.crop_to_scan and args.grain_format not in POINT_FORMATS:
        raise InputError(f"--crop-to-scan given with --grain-format {args.grain_format}; "
                         "expected it with point grains (--grain-format "
                         f"{', '.join(POINT_FORMATS)})")
    if args.z_top_um is not None and not math.isfinite(args.z_top_um):
        raise InputError(f"--z-top-um is {args.z_top_um!r}; expected a finite number (µm)")
    if args.crop_magnetization_kA_per_m is not None and not args.crop_to_scan:
        raise InputError("--crop-magnetization-kA-per-m given without --crop-to-scan; expected "
                         "it only with the crop, whose reach it sets")


# the limits of the cuboid inversion of one scan (`smm_daq.cli.mmt`), for every inversion
HEIGHT_UM = (1e-3, 1e6)  # a nanometre to a metre
SIGMA_NT = (1e-9, 1e9)
SENSOR_SIZE_HELP = ("sensor active area, FULL widths W,L in µm (the MMT libraries' JSON give "
                    "half-lengths: double them)")


def refuse_z_down_height(text: str | None) -> None:
    """A negative --height-um (or one of its comma list) refused, saying why: the cuboid
    library gives the sensor's height as a negative z in its z-down frame; here z is up."""
    for part in (text or "").split(","):
        try:
            value = float(part)
        except ValueError:
            continue  # said by the parser of the option
        if math.isfinite(value) and value < 0:
            raise InputError(
                f"--height-um is {text!r}; expected the sensor's height above the sample top, "
                f"a number > 0 in µm (z up): a negative height is the cuboid library's z-down "
                f"convention, the same height given here as {-value:g}")


def _per_entry(option: str, text: str | None, n: int,
               limits: tuple[float, float], unit: str) -> list[float | None]:
    """A comma list of one value for all entries or one per entry (µm or nT), each within
    `limits`."""
    if text is None:
        return [None] * n
    parts = text.split(",")
    if len(parts) not in (1, n):
        raise InputError(f"{option} is {text!r}; expected one value or {n} (one per --entry)")
    values = [within(option, v, *limits, unit) for v in floats(option, text, len(parts))]
    return values * n if len(values) == 1 else values


def _grains(args: argparse.Namespace, scans: list) -> tuple[object, dict[str, object]]:
    """The grains in the scan's frame, and the options that shaped them as the result records
    them (`grain_shaping.shaped_grains`, as the MMT tab shapes them); the crop, when asked
    for, keeps the grains whose field could reach the scans inverted above their noise
    (`dragonfly.scan_crop`), for every point format alike, once the grains are registered."""
    from smm_daq.analysis.mmt.formats.dragonfly import (
        DragonflyOptions,
        scan_crop,
        with_magnetization,
    )
    from smm_daq.analysis.mmt.grain_shaping import shaped_grains

    reg = registration(args)
    crop = scan_crop([s.data for s in scans], [s.sigma for s in scans],
                     [s.height for s in scans],
                     [s.sensor_size for s in scans]) if args.crop_to_scan else {}
    if crop and args.crop_magnetization_kA_per_m is not None:
        crop = with_magnetization(crop, args.crop_magnetization_kA_per_m * 1e3)
    options = None
    if args.grain_format == "dragonfly":
        if args.min_voxels < 1:
            raise InputError(f"--min-voxels is {args.min_voxels}; expected a whole number >= 1")
        options = DragonflyOptions(
            min_voxels=args.min_voxels,
            z_top_mm=None if args.z_top_um is None else args.z_top_um * 1e-3,
            z_down=args.z_down)
    return shaped_grains(args.grains, args.grain_format, reg, model=args.model,
                         dragonfly=options, crop=crop)


MAX_SENSOR_THICKNESS_UM = 1e4  # a centimetre: no magnetometer's sensing volume is deeper


def _check_thickness(value: float, model: str) -> None:
    """--sensor-thickness-um: 0 (an area sensor) or a thickness the point models integrate."""
    if value != 0 and not MIN_M / UM <= value <= MAX_SENSOR_THICKNESS_UM:
        raise InputError(f"--sensor-thickness-um is {value!r}; expected 0 (an area sensor) or "
                         f"{MIN_M / UM:g} .. {MAX_SENSOR_THICKNESS_UM:g} µm")
    if value > 0 and model == "cuboid":
        raise InputError(f"--sensor-thickness-um is {value:g}: a sensor with a depth, and the "
                         "cuboid model has point and area sensors only; expected --model "
                         "dipole, quadrupole or octupole, or 0")


def invert_models(args: argparse.Namespace) -> int:
    """`mmt invert` through the joint solver (any grain model, one or more scans)."""
    from smm_daq.analysis.mmt.masks import mask_for
    from smm_daq.analysis.mmt.models.multipole import PointGrains
    from smm_daq.analysis.mmt.result_file import (
        grain_parameters,
        write_result_csv,
        write_result_entry,
    )
    from smm_daq.analysis.mmt.result_params import mask_parameters
    from smm_daq.analysis.mmt.solver.device import resolve
    from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
    from smm_daq.analysis.mmt.solver.misfit import residual_misfit
    from smm_daq.analysis.subtract_inputs import read_source
    from smm_daq.cli.inversion_progress import InversionProgress, say
    from smm_daq.cli.maps import say_if_unfinished
    from smm_daq.cli.mmt import _sensor_size, _warnings_to_stderr
    from smm_daq.storage.nexus import check_new_entry, read_sensor_thickness

    entries = list(args.entry)
    if len(set(entries)) != len(entries):
        raise InputError(f"--entry names {entries}; expected each entry once")
    if args.tile_um is not None:
        raise InputError("--tile-um inverts one scan of cuboid grains with the cuboid model; "
                         "expected no --tile-um with several entries, point grains, another "
                         "model or a mask")
    device = resolve(args.device)  # a GPU asked for and not usable: refused, saying why
    out = output_file("--out", args.out, overwrite=args.overwrite)
    library_out = (output_file("--library-out", args.library_out, overwrite=args.overwrite)
                   if args.library_out else None)
    if not (args.damping >= 0 and math.isfinite(args.damping)):
        raise InputError(f"--damping is {args.damping!r}; expected a number >= 0")
    maps = [read_source(args.file, e) for e in entries]  # measured maps, no model's
    for e in entries:
        say_if_unfinished(args.file, e)
    refuse_z_down_height(args.height_um)
    heights = _per_entry("--height-um", args.height_um, len(entries), HEIGHT_UM, " µm")
    sigmas = _per_entry("--sigma-nT", args.sigma_nT, len(entries), SIGMA_NT, " nT")
    choice = sd_from(args)
    noise = [None if v is None else v * NT for v in sigmas]  # the residual is set against it
    masks = list(args.mask or [])
    if len(masks) not in (0, 1, len(entries)):
        raise InputError(f"{len(masks)} --mask for {len(entries)} --entry; expected one for "
                         "all, or one per entry")
    scans = []
    for i, (entry, data) in enumerate(zip(entries, maps, strict=True)):
        height = heights[i] * UM if heights[i] is not None else data.height
        if height is None:
            raise InputError(f"entry '{entry}' of {args.file} has no sensor height; give "
                             "--height-um")
        where = f"{args.file}, entry '{entry}'"
        size = _sensor_size(args.sensor_size_um, data.sensor_size, where)
        thick = (args.sensor_thickness_um * UM if args.sensor_thickness_um is not None
                 else read_sensor_thickness(args.file, entry))
        if args.sensor_thickness_um is None and 0 < thick < MIN_M:
            raise InputError(f"the sensor thickness is {thick!r} m; expected 0 (an area "
                             f"sensor) or at least {MIN_M:g} m: give --sensor-thickness-um",
                             source=where)
        if args.sensor_thickness_um is not None:
            _check_thickness(args.sensor_thickness_um, args.model or "cuboid")
        with _warnings_to_stderr():  # e.g. a mask shape that excludes no pixel
            mask = mask_for(masks, i, data)
        scans.append(Scan(data, height, (*size, thick) if thick > 0 else size,
                          None if sigmas[i] is None else sigmas[i] * NT, mask))
    mask_sources = mask_parameters(masks, len(entries))
    name = args.result_entry or derived_entry_name(entries[0], "_mmt", "--result-entry")
    check_new_entry(args.file, name, entries, overwrite=args.overwrite)  # before the work
    with _warnings_to_stderr():
        grains, shaped = _grains(args, scans)
        point = isinstance(grains, PointGrains)
        model = args.model or ("dipole" if point else "cuboid")
        if model == "cuboid" and point:
            raise InputError(f"--model cuboid needs cuboid grains; --grain-format "
                             f"{args.grain_format} gives points: expected --model dipole, "
                             "quadrupole or octupole")
        if library_out is not None and model == "cuboid":
            raise InputError("--library-out is for point models; expected --model dipole, "
                             "quadrupole or octupole")
        if point and grains.left_out:  # after the options' refusals: a refused run inverts none
            say(left_out_note(grains, args.min_voxels))
        if choice == "residual":  # the noise given still crops the grains (`_grains`)
            scans = [replace(scan, sigma=None) for scan in scans]
        shown = InversionProgress()
        result = invert_scans(scans, grains, model=model, damping=args.damping, device=device,
                              progress=say, on_block=shown, on_merge=shown.merge)
    table = result.table()
    misfit = residual_misfit(result, noise)
    write_result_csv(out, table)
    write_result_entry(args.file, name, entries[0], result, table,
                       {"command": invoked_command(),
                        **grain_parameters(args.grains, args.grain_format),
                        **shaped, **mask_sources, **misfit_parameters(choice, misfit)},
                       overwrite=args.overwrite)
    if library_out is not None:
        from smm_daq.analysis.mmt.formats.mpe import write_library_results
        from smm_daq.analysis.mmt.solver.joint import as_points

        write_library_results(library_out, result.coefficients, result.coefficient_covariance,
                              grains if point else as_points(grains))
    print(summary_line(result, table, model, len(entries),
                       f"results in {out} and entry '{name}' of {args.file}",
                       saturation=recorded_saturation(shaped), misfit=misfit))
    return 0


def add_synth_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODEL_CHOICES, default="cuboid",
                   help="cuboid grains (default), or point sources with a dipole, quadrupole "
                        "or octupole (grains written as an x y z volume label list in m)")
    add_directions_option(p)


def add_directions_option(p: argparse.ArgumentParser) -> None:
    """`--directions` of `mmt synth` and `mmt study`: how the magnetizations' directions are
    drawn (`synth.draw_directions`)."""
    p.add_argument("--directions", choices=DIRECTION_DRAWS, default=DIRECTION_DRAWS[0],
                   help="how the magnetizations' directions are drawn: uniform on the sphere "
                        "(default), or uniform-theta, seed 001's draw (azimuth uniform, angle "
                        "from +z uniform in 0..180°, which favours directions near ±z), to "
                        "reproduce its parameter study")


def synthetic_provenance(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """How `mmt synth` made its scan (keyword arguments of `write_map_entry`), the same for
    every grain model: the sample's thickness and model, and the command's parameters."""
    from smm_daq.storage.products import Quantity

    return {"extra": {"sample/thickness": Quantity(args.thickness_um * UM, "m"),
                      "sample/model": args.model},
            "parameters": {"command": invoked_command(),
                           "noise": Quantity(args.noise_nT * NT, "T"),
                           "seed": args.seed,
                           "directions": args.directions,
                           "density": Quantity(args.density_per_mm3, "mm-3",
                                               "grains per volume")}}


def synth_points(args: argparse.Namespace, sx: float, sy: float,
                 size: tuple[float, float]) -> int:
    """`mmt synth --model dipole|quadrupole|octupole`."""
    from smm_daq.analysis.mmt.formats.points import write_points
    from smm_daq.analysis.mmt.models.multipole import coefficient_column
    from smm_daq.analysis.mmt.synth_points import make_point_sample, scan_points
    from smm_daq.cli.inversion_progress import say_if_compiling
    from smm_daq.storage.nexus import write_map_entry

    say_if_compiling(args.model)
    rng = np.random.default_rng(args.seed)
    sample = make_point_sample((sx * UM, sy * UM), args.thickness_um * UM,
                               args.density_per_mm3, rng, args.model, args.directions)
    data = scan_points(sample, height=args.height_um * UM, step=args.step_um * UM,
                       sensor_size=size, noise=args.noise_nT * NT, rng=rng, name=args.name)
    write_map_entry(args.out, data, kind="synthetic", overwrite=args.overwrite,
                    **synthetic_provenance(args))
    write_points(args.grains_out, sample.grains)
    g = sample.grains
    k = sample.coefficients.shape[1]
    with open(args.truth_out, "w", encoding="utf-8") as f:
        names = ["mx_A_per_m", "my_A_per_m", "mz_A_per_m"] + [
            coefficient_column(j) for j in range(3, k)]
        f.write(",".join(["grain", *names, "volume_um3", "x_um", "y_um", "z_um"]) + "\n")
        for i in range(g.n_grains):
            vals = [*sample.coefficients[i], g.volume[i] / UM**3, *(g.positions[i] / UM)]
            f.write(f"{int(g.labels[i])}," + ",".join(f"{v:.9g}" for v in vals) + "\n")
    print(f"{g.n_grains} point grains ({args.model}); scan {data.bz.shape[1]} × "
          f"{data.bz.shape[0]} in entry '{args.name}' of {args.out}; grains in "
          f"{args.grains_out}, truth in {args.truth_out}")
    return 0


def _import_mpe(args: argparse.Namespace) -> int:
    from smm_daq.analysis.mmt.formats.scan_import import import_scan

    session_file("--out", args.out)  # as import mmt-scan checks it: before the scan is read
    data = import_scan("mpe", args.params, args.arrays, args.out, args.name,
                       overwrite=args.overwrite)
    print(f"{data.bz.shape[1]} × {data.bz.shape[0]} map into entry '{args.name}' of {args.out}")
    return 0


def add_import_mpe(isub: argparse._SubParsersAction) -> None:
    q = isub.add_parser("mpe", help="a scan in the multipole library's format (JSON + NPZ)",
                        description="Import a scan in the multipole library's format: its "
                                    "MetaDict JSON (geometry) and NPZ (Bz_array).")
    q.add_argument("params", metavar="PARAMS.json", help="scan geometry (MetaDict JSON)")
    q.add_argument("arrays", metavar="DATA.npz", help="arrays with Bz_array in T")
    q.add_argument("--out", required=True, metavar="FILE.h5", help=SESSION_OUT_HELP)
    q.add_argument("--name", required=True, type=entry_name, help="entry name")
    q.add_argument("--overwrite", action="store_true", help=IMPORT_OVERWRITE_HELP)
    q.set_defaults(func=_import_mpe)
