"""`smm-daq` map-analysis commands: subtract, background, level, noise, susceptibility,
magnetization, crop, export.

Each reads an entry of a session file and (except noise and export) writes a new entry
naming its source. Lengths on the command line are in µm, fields in nT or µT as the option
says. The analysis modules are imported inside the handlers: scipy is slow to import, and
every `smm-daq` command builds this parser.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smm_daq.articles import with_article
from smm_daq.cli.args import (
    dataset_to_read,
    distinct_outputs,
    entry_name,
    entry_to_read,
    floats,
    invoked_command,
    output_file,
    within,
)
from smm_daq.errors import InputError
from smm_daq.shell_words import command_line
from smm_daq.storage.mapdata import MapData
from smm_daq.text_files import path_shown, shown

if TYPE_CHECKING:
    from smm_daq.analysis.mmt.result_read import SavedResult
    from smm_daq.analysis.susceptibility import LayerInversion

UM = 1e-6
NT = 1e-9
MAX_UM = 1e6  # a metre: no map or sample is larger

# --apply-insignificant-shift, and the window's checkbox of the same meaning
INSIGNIFICANT_SHIFT_HELP = ("apply the registration's shift even where it is not significantly "
                            "different from zero (by default a zero shift is applied then)")


def um_pairs(option: str, text: str) -> np.ndarray:
    """'x,y;x,y;...' in µm -> (K, 2) in m; an outline crossing or retracing itself refused."""
    from smm_daq.analysis.mmt.masks import refuse_crossing

    # a vertex refused is named within its outline (not as though it were the outline); the
    # outline quoted once, cut where long (an outline traced in an image tool has 10^4 vertices)
    outline = f"{option} {shown(text)}"
    points = [floats(f"{outline}: the vertex", p.strip(), 2)
              for p in text.split(";") if p.strip()]
    if len(points) < 3 or np.any(np.abs(points) > MAX_UM):
        raise InputError(f"{option} is {shown(text)}; expected at least 3 'x,y' vertices in "
                         f"µm, each within ±{MAX_UM:g}")
    refuse_crossing(outline, np.array(points))
    return np.array(points) * UM


def _add_io(p: argparse.ArgumentParser, *, new_entry: bool = True, entries: bool = False
            ) -> None:
    p.add_argument("file", metavar="FILE.h5", help="session file")
    if entries:
        p.add_argument("--entry", required=True, type=entry_to_read, action="append",
                       help="entry to read; repeated: induced maps on one grid at fields "
                       "along one axis (either way), combined")
    else:
        p.add_argument("--entry", required=True, type=entry_to_read, help="entry to read")
    if new_entry:
        p.add_argument("--name", required=True, type=entry_name, help="entry to write")
        p.add_argument("--overwrite", action="store_true", help="replace an entry of that name")


def _add_mask(p: argparse.ArgumentParser, needed: str = "at least one") -> None:
    g = p.add_argument_group(f"background pixels (off the sample); {needed}")
    g.add_argument("--background-rect", action="append", default=[], metavar="X0,X1,Y0,Y1",
                   help="a rectangle of background, µm (repeatable)")
    g.add_argument("--sample-polygon", action="append", default=[], metavar="X,Y;X,Y;...",
                   help="the sample's outline, µm: background is outside it (repeatable)")
    g.add_argument("--border-um", type=float, metavar="W",
                   help="a frame W µm wide along the map's edges is background")


def _background_mask(args: argparse.Namespace, m: MapData, *, required: bool) -> np.ndarray | None:
    """The background pixels the options select on `m`'s grid (`_background_selection`)."""
    selected = _background_selection(args, m, required=required)
    return None if selected is None else selected[0]


def _background_required(args: argparse.Namespace, m: MapData
                         ) -> tuple[np.ndarray, dict[str, object]]:
    """`_background_selection` where a background must be given (refused where none is)."""
    selected = _background_selection(args, m, required=True)
    assert selected is not None  # required: refused there
    return selected


def _background_selection(args: argparse.Namespace, m: MapData, *, required: bool
                          ) -> tuple[np.ndarray, dict[str, object]] | None:
    """The background pixels the options select on `m`'s grid, and the selection as data for
    the entry's `process/parameters`, for a reader that needs no command line to parse: the
    options that chose them, in m (the pixels the fit used are added by its caller,
    `_pixels_used`). None where no option is given and none is `required`."""
    from smm_daq.analysis.background import border_mask
    from smm_daq.analysis.masks import polygon_mask, rectangle_mask
    from smm_daq.storage.products import Quantity

    mask = np.zeros(m.shape, bool)
    record: dict[str, object] = {}
    rects = []
    for text in args.background_rect:
        x0, x1, y0, y1 = floats("--background-rect", text, 4)
        if max(abs(x0), abs(x1), abs(y0), abs(y1)) > MAX_UM:
            raise InputError(f"--background-rect is {text!r}; expected µm within ±{MAX_UM:g}")
        mask |= rectangle_mask(m, (x0 * UM, x1 * UM), (y0 * UM, y1 * UM))
        rects.append((x0 * UM, x1 * UM, y0 * UM, y1 * UM))
    if rects:
        record["background_rectangles"] = Quantity(np.array(rects), "m",
                                                   "background rectangles (x0, x1, y0, y1)")
    if args.border_um is not None:
        border = within("--border-um", args.border_um, 1e-3, MAX_UM, " µm") * UM
        mask |= border_mask(m, border)
        record["background_border"] = Quantity(border, "m",
                                               "width of the background frame along the edges")
    if args.sample_polygon:
        sample = np.zeros(m.shape, bool)
        outlines = []
        for text in args.sample_polygon:
            outline = um_pairs("--sample-polygon", text)
            sample |= polygon_mask(m, outline)
            outlines += [np.full((1, 2), np.nan), outline]
        mask |= ~sample
        record["sample_polygons"] = Quantity(
            np.concatenate(outlines[1:]), "m",
            "sample outlines (x, y), one after another, a row of NaN between two: background "
            "is outside them")
    if not record:
        if required:
            raise InputError(
                "no background given; expected --background-rect, --sample-polygon or --border-um"
            )
        return None
    if not mask.any():
        raise InputError(
            "the background given (--background-rect, --sample-polygon, --border-um) covers no "
            f"pixel of the map; expected pixels within x {m.x[0] / UM:g}..{m.x[-1] / UM:g} µm, "
            f"y {m.y[0] / UM:g}..{m.y[-1] / UM:g} µm")
    return mask, record


def _pixels_used(used: np.ndarray) -> object:
    """The pixels a fit used (1; not the selection's unmeasured ones, nor those of a line
    too short of them to fit) as the entry's `process/parameters` record them."""
    from smm_daq.storage.products import Compressed, Quantity

    return Compressed(Quantity(used.astype(np.uint8), "1",
                               "background pixels used (1), on the entry's grid"))


def _write(args: argparse.Namespace, m: MapData, kind: str, extra: dict | None = None, *,
           say: Callable[[str], None] = print, command: str | None = None,
           **layout: object) -> None:
    """Write the product entry: `layout` passes plots, parameters, default and processes;
    `command`: the one recorded (default: the command line as run)."""
    from smm_daq.storage.nexus import write_map_entry

    parameters = dict(layout.pop("parameters", {}) or {})  # type: ignore[call-overload]
    parameters["command"] = command if command is not None else invoked_command()
    write_map_entry(args.file, m, kind=kind, extra=extra, overwrite=args.overwrite,
                    parameters=parameters, **layout)  # type: ignore[arg-type]
    say(f"{args.file}: wrote entry '{m.name}' ({kind})")


def _read(args: argparse.Namespace, entry: str, warn: Callable[[str], None] | None = None
          ) -> MapData:
    """The entry's map, refused unless an analysis can use it: a measured map (not the model
    field a χ or M entry keeps as its Bz, which a crop or levelling would silently turn into
    a map of the model, its χ dropped) on a grid, with some measured pixels; `warn`: as
    `say_if_unfinished`."""
    from smm_daq.analysis.subtract_inputs import read_source

    m = read_source(args.file, entry)
    say_if_unfinished(args.file, entry, warn)
    return m


def say_if_unfinished(path: str, entry: str, warn: Callable[[str], None] | None = None
                      ) -> None:
    """Warn on stderr (or tell `warn`) when `entry` is a scan still running or cut off: a
    product of it holds only the lines measured, which nothing else in it says."""
    from smm_daq.analysis.subtract_inputs import unfinished_scan

    note = unfinished_scan(path, entry)
    if note and warn is not None:
        warn(note)
    elif note:
        print(f"smm-daq: warning: {note}", file=sys.stderr)


@contextlib.contextmanager
def naming_the_file(file: str) -> Iterator[None]:
    """An analysis's InputError (a map it cannot use) names the session file too."""
    try:
        yield
    except InputError as exc:
        if file in str(exc):
            raise
        raise InputError(str(exc), source=file) from None


def _naming_the_file(handler: Callable[[argparse.Namespace], int]
                     ) -> Callable[[argparse.Namespace], int]:
    """The handler's InputError names the session file too (`naming_the_file`)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with naming_the_file(args.file):
            return handler(args)

    return run


def _derived(m: MapData, args: argparse.Namespace, what: str) -> MapData:
    return m.with_bz(m.bz, name=args.name, title=f"{m.name}: {what}", sources=(m.name,))


# -- handlers ---------------------------------------------------------------------------------


def _subtract(args: argparse.Namespace) -> int:
    from smm_daq.analysis.induced_entry import subtract_entries
    from smm_daq.cli.warning_text import warning_line
    from smm_daq.thread_warnings import recorded

    with recorded() as caught:  # e.g. a shift that may be an artefact: one line each
        res = subtract_entries(args.file, args.in_field, args.remanent, args.name,
                               register=not args.no_register, rotation=args.rotation,
                               overwrite=args.overwrite,
                               apply_insignificant=args.apply_insignificant_shift,
                               parameters={"command": invoked_command()})
    print(f"{args.file}: wrote entry '{args.name}' (induced)")
    for entry in (args.in_field, args.remanent):
        say_if_unfinished(args.file, entry)
    for w in caught:  # another library's labelled with its origin
        print(warning_line(w), file=sys.stderr)
    if res.registration is not None and res.registration.undetermined:
        print("registered: no shift determined: not applied (see the warning)")
    elif res.registered:
        found = res.registration.shift if res.registration is not None else res.shift
        (sx, sy), (ex, ey) = found, res.shift_sd
        print(f"registered: shift ({sx / UM:.4f} ± {ex / UM:.4f}, {sy / UM:.4f} ± {ey / UM:.4f}) µm"
              + (" (not significantly different from zero: not applied)"
                 if res.shift != found else "")
              + (f", rotation {np.degrees(res.rotation):.4f} ± {np.degrees(res.rotation_sd):.4f}°"
                 if args.rotation else ""))
    return 0


def parsed(arguments: list[str]) -> argparse.Namespace:
    """A map command's words (after `smm-daq`, e.g. ["background", FILE, "--entry", ...]) as
    the command line parses them, for a program that runs the command's function in hand
    (the window): its defaults and values the command's own."""
    parser = argparse.ArgumentParser(prog="smm-daq")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(arguments)


def _background(args: argparse.Namespace) -> int:
    background_entry(args)
    return 0


def background_entry(args: argparse.Namespace, *, say: Callable[[str], None] = print,
                     command: str | None = None, warn: Callable[[str], None] | None = None
                     ) -> None:
    """`smm-daq background` (`parsed` arguments): the new entry written, what was removed
    told to `say`; `command`: the one the entry records (default: the command line as
    run); `warn`: told that the entry is an unfinished scan (default: said on stderr)."""
    from smm_daq.analysis.background import remove_background, remove_field_leakage
    from smm_daq.storage.products import Quantity

    m = _read(args, args.entry, warn)
    if args.model == "field":
        selection = _background_selection(args, m, required=False)
        mask, selected = selection if selection is not None else (None, {})
        if mask is None:
            out, leak = remove_field_leakage(m)
            what = "the applied field's Bz, from the entry's field vector"
            said = f"removed {what}: {_nT(leak)} nT"
        else:  # what the sensor read off the sample: the field's reading and any other offset
            fit = remove_background(m, mask, model="offset")
            out, leak = fit.map, fit.coefficients[0]
            selected["background_pixels"] = _pixels_used(fit.used)
            what = ("an offset fitted on the background pixels: the applied field's reading "
                    "with any other constant offset")
            said = (f"removed an offset of {_nT(leak)} nT fitted on {fit.pixels} background "
                    f"pixels: the applied field's reading with any other constant offset "
                    f"({_applied_bz(m)})")
        extra = {"results/field_leakage": Quantity(leak, "T", what)}
        say(said)
        _write(args, _derived(out, args, "field leakage removed"), "background", extra,
               say=say, command=command, parameters={"model": "field", **selected})
        return
    mask, selected = _background_required(args, m)
    fit = remove_background(m, mask, model=args.model)
    selected["background_pixels"] = _pixels_used(fit.used)
    extra: dict = {"results/offset": Quantity(fit.coefficients[0], "T"),
                   "results/residual_rms": Quantity(fit.residual_rms, "T"),
                   "results/pixels": fit.pixels}
    if len(fit.coefficients) > 1:
        extra["results/gradient"] = Quantity(np.array(fit.coefficients[1:]), "T/m",
                                             "slope (x, y) about the map centre")
    say(f"{args.model} fitted on {fit.pixels} pixels: offset {_nT(fit.coefficients[0])} nT, "
        f"residual RMS {_nT(fit.residual_rms)} nT")
    _write(args, _derived(fit.map, args, f"{args.model} background removed"), "background",
           extra, say=say, command=command, parameters={"model": args.model, **selected})


def _nT(value: float) -> str:
    """A field in nT to 4 digits, in full where those round to 10⁴ nT or more (a field of
    20 µT read "2e+04", and one of 9999.8 nT "1e+04")."""
    nt = value / NT
    short = f"{nt:.4g}"
    return f"{nt:.0f}" if "e+" in short else short


def _applied_bz(m: MapData) -> str:
    """The applied field's Bz as the entry records it, in words."""
    field = m.applied_field
    if field is None or np.shape(field) != (3,):
        return "the entry records no applied field"
    if not np.any(field):
        return "the scan was at zero applied field, so none of it is the field's"
    return f"the applied field's Bz is {_nT(field[2])} nT"


def _level(args: argparse.Namespace) -> int:
    level_entry(args)
    return 0


def level_entry(args: argparse.Namespace, *, say: Callable[[str], None] = print,
                command: str | None = None, warn: Callable[[str], None] | None = None
                ) -> None:
    """`smm-daq level` (`parsed` arguments), as `background_entry` runs its command."""
    from smm_daq.analysis.levelling import level_lines
    from smm_daq.storage.products import Quantity

    m = _read(args, args.entry, warn)
    mask, selected = _background_required(args, m)
    lev = level_lines(m, mask, order=args.order)
    selected["background_pixels"] = _pixels_used(lev.used)
    extra = {"results/line_offsets": Quantity(lev.offsets, "T"),
             "results/line_slopes": Quantity(lev.slopes, "T/m"),
             "results/lines_interpolated": lev.interpolated.astype(np.uint8)}
    say(f"levelled {m.shape[0]} lines ({int(lev.interpolated.sum())} without background, "
        "interpolated)")
    _write(args, _derived(lev.map, args, "lines levelled"), "levelled", extra, say=say,
           command=command, parameters={"order": args.order, **selected})


def _noise(args: argparse.Namespace) -> int:
    noise_of(args)
    return 0


def noise_of(args: argparse.Namespace, *, say: Callable[[str], None] = print,
             warn: Callable[[str], None] | None = None) -> float:
    """`smm-daq noise` (`parsed` arguments): the noise σ (T), as said to `say`; `warn`: as
    `background_entry`'s."""
    from smm_daq.analysis.noise import noise_from_repeats, noise_rms
    from smm_daq.analysis.subtract_inputs import is_induced, one_side_shared, shared_sources

    if args.repeat == args.entry:
        raise InputError(f"--repeat is entry '{args.entry}' itself; expected another scan of "
                         "the same sample (its difference from this one is the noise)")
    m = _read(args, args.entry, warn)
    if args.repeat is not None:
        try:
            other = _read(args, args.repeat, warn)
        except InputError as exc:
            raise InputError(f"--repeat is {args.repeat!r}: {exc}") from None
        induced = is_induced(args.file, args.entry)
        if induced != is_induced(args.file, args.repeat):
            one, other_kind = (args.entry, args.repeat) if induced else (args.repeat, args.entry)
            raise InputError(f"--repeat is {args.repeat!r}: '{one}' is an induced map and "
                             f"'{other_kind}' a scan: their difference is the remanence, not "
                             "noise; expected a repeat of the same kind")
        one_side = one_side_shared(args.file, args.entry, args.repeat)
        if one_side is not None:
            raise InputError(_one_side_refusal(args.entry, args.repeat, *one_side))
        shared = shared_sources(args.file, args.entry, args.repeat)
        if shared:
            raise InputError(f"--repeat is {args.repeat!r}: '{args.entry}' and '{args.repeat}' "
                             "were both made from "
                             f"{', '.join(repr(name) for name in shared)}: their difference "
                             "is what was done to them, not noise; expected a repeat measured "
                             "on its own (another scan of the same sample in the same field)")
        sigma = noise_from_repeats(m, other, _background_mask(args, m, required=False))
        say(f"noise: {sigma / NT:.4g} nT RMS (from '{m.name}' − '{other.name}', over √2)")
    else:
        sigma = noise_rms(m, _background_mask(args, m, required=True))
        say(f"noise: {sigma / NT:.4g} nT RMS (background pixels of '{m.name}')")
    return sigma


def _one_side_refusal(entry: str, repeat: str, side: str, one: tuple[str, str],
                      other: tuple[str, str]) -> str:
    """Why the induced maps `entry` and `repeat` (the subtractions in-field − remanent `one`
    and `other`, sharing the scan on `side`) are no repeat of each other to take noise
    from."""
    kept = 0 if side == "remanent" else 1  # the side whose scans differ
    a, b = one[1 - kept], other[1 - kept]
    shared = f"the {side} scan '{a}'" if a == b else (
        f"their {side} scans '{a}' and '{b}', made from one measurement,")
    left = f"'{other[kept]}' − '{one[kept]}'" if kept else f"'{one[kept]}' − '{other[kept]}'"
    return (f"--repeat is {repeat!r}: '{entry}' and '{repeat}' are made from '{one[0]}' − "
            f"'{one[1]}' and "
            f"'{other[0]}' − '{other[1]}', with {shared} in common: it cancels "
            f"from their difference, which is {left}, the noise of one scan, not of an "
            "induced map (which holds the noise of both its scans, √2 times more); expected "
            "induced maps with no scan in common, or the two scans themselves ("
            f"{command_line(['noise', '--entry', one[kept], '--repeat', other[kept]])}) for a "
            "scan's noise")


def _support(args: argparse.Namespace, m: MapData) -> np.ndarray | None:
    from smm_daq.analysis.masks import polygon_mask

    if not args.support_polygon:
        return None
    support = np.zeros(m.shape, bool)
    for text in args.support_polygon:
        support |= polygon_mask(m, um_pairs("--support-polygon", text))
    return support


def _layer_options(args: argparse.Namespace, m: MapData) -> dict:
    options: dict = {"support": _support(args, m), "criterion": args.criterion}
    if args.noise_nT is not None:
        options["noise"] = within("--noise-nT", args.noise_nT, 1e-6, 1e9, " nT") * NT
    if args.correlation_length_um is not None:
        options["correlation_length"] = within("--correlation-length-um",
                                                args.correlation_length_um, 0.0, MAX_UM, " µm") * UM
    return options


_LAYER = {  # kind -> (plot group, signal, units, long name)
    "susceptibility": ("chi", "chi", "1", "susceptibility χ (SI)"),
    "magnetization": ("magnetization", "M", "A/m", "magnetization M along the direction"),
}


def _write_layer(args: argparse.Namespace, m: MapData, inv: LayerInversion, kind: str, *,
                 series: np.ndarray | None = None, label: str | None = None) -> None:
    """Write a χ or M entry; `series`: the applied fields (K, 3) of the induced maps whose
    combination `m` is (`label` saying what it is)."""
    from smm_daq.storage.products import MapPlot, Quantity

    group, signal, units, long_name = _LAYER[kind]
    plot = MapPlot(group, signal, inv.values, units, long_name, errors=inv.sd)
    residual = MapPlot("residual", "residual", m.bz - inv.predicted.bz, "T",
                       "Bz minus the model's Bz")
    extra = {
        "results/offset": Quantity(inv.offset, "T", "fitted constant"),
        "results/regularization": Quantity(inv.regularization, "T2 m2 A-2", "λ"),
        "results/noise": Quantity(inv.noise, "T", "noise σ"),
        "results/residual_rms": Quantity(inv.residual_rms, "T"),
        "results/iterations": inv.iterations,
        "results/converged": np.uint8(inv.converged),
    }
    parameters = {
        "thickness": Quantity(inv.thickness, "m", "layer thickness"),
        "direction": Quantity(inv.direction, "1", "unit vector of the magnetization"),
        "criterion": inv.criterion,
        # its default (the sensor height) resolved: what a later default would not say
        "correlation_length": Quantity(inv.correlation_length, "m",
                                       "ℓ of the penalty ‖M‖² + ℓ²‖∇M‖²"),
    }
    if series is not None:
        parameters["applied_fields"] = Quantity(
            series, "T", "applied field (x, y, z) of each induced map combined, as sources")
    layer = with_article(f"{inv.thickness / UM:g}")
    title = f"{label or m.name}: {kind} of {layer} µm layer (data/Bz: its model)"
    sources = tuple(m.sources) if series is not None else (m.name,)
    model = inv.predicted.with_bz(inv.predicted.bz, name=args.name, sources=sources, title=title)
    # labelled as what it is in every viewer, as an MMT result's residual is: not a Bz measured
    _write(args, model, kind, extra, plots=[plot, residual], default=group,
           parameters=parameters, long_name="Bz of the fitted layer's model (T)")
    print(f"λ by {inv.criterion}: {inv.regularization:.3g}; noise {inv.noise / NT:.4g} nT; "
          f"residual RMS {inv.residual_rms / NT:.4g} nT; {inv.iterations} CG iterations")
    if not inv.converged:
        print(f"warning: the solution did not converge in {inv.iterations} iterations; the map "
              "may not fit this model (thickness, direction) or its noise is set too low",
              file=sys.stderr)


def _susceptibility(args: argparse.Namespace) -> int:
    from smm_daq.analysis.field_series import combine_field_series
    from smm_daq.analysis.subtract_inputs import is_induced
    from smm_daq.analysis.susceptibility import invert_susceptibility

    entries = list(dict.fromkeys(args.entry))  # an entry given twice counts once
    maps = [_read(args, entry) for entry in entries]
    thickness = within("--thickness-um", args.thickness_um, 1e-3, MAX_UM, " µm") * UM
    m = maps[0] if len(maps) == 1 else combine_field_series(maps, ", ".join(entries))
    options = _layer_options(args, m)
    if len(maps) > 1 and "noise" in options:
        options["noise"] = _series_noise(args.file, entries, maps, options["noise"])
    inv = invert_susceptibility(m, thickness, **options)
    if len(maps) == 1:
        _write_layer(args, m, inv, "susceptibility")
    else:
        fields = np.array([one.applied_field for one in maps])
        _write_layer(args, m, inv, "susceptibility", series=fields, label=m.title)
    for entry in entries:
        if not is_induced(args.file, entry):
            print(f"smm-daq: warning: '{entry}' is not an induced map (no subtraction among "
                  "its sources): its χ holds the remanence's field too, unless the sample has "
                  "none; subtract a zero-field scan first (smm-daq subtract)", file=sys.stderr)
    return 0


def _series_noise(file: str, entries: list[str], maps: list[MapData], each: float) -> float:
    """The noise (T) of the combination of induced maps `maps` (of `entries`), `each` that
    of one of them (--noise-nT), from the scans each subtracted (`noise_ratio`); said."""
    from smm_daq.analysis.field_series import noise_ratio, series_axis
    from smm_daq.analysis.subtract_inputs import subtracted_scans

    pairs = subtracted_scans(file, entries)
    ratio = noise_ratio(series_axis(maps)[1], pairs)
    unknown = [e for e, pair in zip(entries, pairs, strict=True) if pair is None]
    shared = sorted({scan for pair in pairs if pair is not None for scan in pair
                     if sum(scan in p for p in pairs if p is not None) > 1})
    why = (f"{'the scan' if len(shared) == 1 else 'the scans'} "
           f"{', '.join(repr(s) for s in shared)} shared by two maps or more"
           if shared else "no scan shared by two maps")
    guess = (f"; {', '.join(repr(e) for e in unknown)} not made by one subtraction of two "
             "scans: taken to share none" if unknown else "")
    print(f"noise of the combination: {each * ratio / NT:.4g} nT, {ratio:.3g} × --noise-nT "
          f"(one induced map's, each alike, its two scans of equal noise): {why}{guess}")
    return each * ratio


def _magnetization(args: argparse.Namespace) -> int:
    from smm_daq.analysis.subtract_inputs import is_induced
    from smm_daq.analysis.susceptibility import invert_magnetization

    m = _read(args, args.entry)
    thickness = within("--thickness-um", args.thickness_um, 1e-3, MAX_UM, " µm") * UM
    direction = np.array(floats("--direction", args.direction, 3))
    size = float(np.max(np.abs(direction)))
    if not 0 < size <= 1e300:
        raise InputError(f"--direction is zero or absurd ({args.direction!r}); expected the "
                         "remanence's direction x,y,z")
    direction = direction / size
    inv = invert_magnetization(m, direction, thickness, **_layer_options(args, m))
    _write_layer(args, m, inv, "magnetization")
    field = m.applied_field
    if field is not None and np.any(field) and not is_induced(args.file, args.entry):
        print(f"smm-daq: warning: '{args.entry}' was taken in a field "
              f"({', '.join(f'{v / 1e-6:g}' for v in field)}) µT: its M holds the induced "
              "magnetization too, not the remanence alone; a zero-field scan maps the "
              "remanence", file=sys.stderr)
    return 0


def _crop(args: argparse.Namespace) -> int:
    from smm_daq.analysis.crop import crop
    from smm_daq.storage.products import Quantity

    m = _read(args, args.entry)
    x0, x1 = floats("--x-um", args.x_um, 2)
    y0, y1 = floats("--y-um", args.y_um, 2)
    try:
        out = crop(m, (x0 * UM, x1 * UM), (y0 * UM, y1 * UM))
    except InputError as exc:
        raise InputError(f"--x-um {args.x_um}, --y-um {args.y_um}: {exc}") from None
    _write(args, _derived(out, args, "cropped"), "crop",
           parameters={"x_range": Quantity(np.array([x0, x1]) * UM, "m"),
                       "y_range": Quantity(np.array([y0, y1]) * UM, "m")})
    return 0


_FORMATS = {  # units -> (CSV column suffix, factor, picture label given the name)
    "1": ("SI", 1.0, lambda stem: "χ (SI)" if stem == "chi" else f"{stem} (SI)"),
    "A/m": ("A_per_m", 1.0, lambda stem: f"{stem} (A/m)"),
    "T": ("nT", 1e9, lambda stem: f"{stem} (nT)"),
}
_RENAMED = {  # dataset paths of earlier versions -> where the maps are now
    "results/chi_SI": "chi/chi",
    "results/chi_sd_SI": "chi/errors",
    "results/M_A_per_m": "magnetization/M",
    "results/M_sd_A_per_m": "magnetization/errors",
    "results/residual_T": "residual/residual",
}


# What lies under an entry, never a map of its grid whatever its shape: a grid whose width
# is 3 (or whose samples a line are as many as its points) must not make one look like a map.
_NOT_MAPS = (  # (path inside the entry, or a group's path ending in "/"; what it is)
    ("data/line_field", "the fluxgate's field (x, y, z) at each grid line's end, one row a "
                        "line"),
    ("instrument/", "an instrument's setting or calibration (e.g. the coils' calibration "
                    "matrix)"),
    ("fly_streams/", "a flown line's raw samples, one row a line"),
)


def _not_a_map(dataset: str) -> str | None:
    """What `dataset` (a path inside an entry) is where it is never a map, else None."""
    for where, what in _NOT_MAPS:
        if dataset == where or (where.endswith("/") and dataset.startswith(where)):
            return what
    return None


def _maps_held(path: str, entry: str, m: MapData, saved: SavedResult | None) -> str:
    """Every map --dataset may name for the entry (`_map_names`), the default marked."""
    default = _default_map(path, entry, m, saved) or "Bz"
    return ", ".join(f"{name} (the default)" if name == default else name
                     for name in _map_names(path, entry, m, saved))


def _map_names(path: str, entry: str, m: MapData, saved: SavedResult | None) -> list[str]:
    """Every map --dataset may name for the entry, as `_chosen` would take it: Bz, and each
    map-like dataset under the entry that it exports (a joint MMT result's maps of each scan
    whose grid is known, whatever their shape; not those of a scan whose grid is not)."""
    import h5py

    from smm_daq.storage.h5file import read_whole

    def read(f: h5py.File) -> list[str]:
        found: list[str] = []
        f[entry].visititems(lambda name, node: found.append(name) if (
            isinstance(node, h5py.Dataset) and node.ndim == 2 and name != "data/Bz") else None)
        return found

    found = read_whole(path, read)
    return ["Bz", *(name for name in found if _exported(path, entry, name, m, saved))]


def exportable_maps(file: str, entry: str) -> tuple[list[str], str]:
    """The maps `smm-daq export --dataset` takes of entry `entry` (the window's Export… offers
    them), and the one it exports without --dataset; as `export_entry` reads the entry (an
    unreadable or damaged one refused with the command's message)."""
    from smm_daq.storage.nexus import read_map

    saved = _saved_result(file, entry)
    m = saved.residual if saved is not None else read_map(file, entry)
    return _map_names(file, entry, m, saved), _default_map(file, entry, m, saved) or "Bz"


def _default_map(path: str, entry: str, m: MapData, saved: SavedResult | None) -> str | None:
    """The map the entry opens on, as --dataset names it: its NeXus default plot (the
    entry's `default` group, that group's `signal`), e.g. a χ entry's chi/chi or a
    magnetization entry's magnetization/M; None for Bz (a scan's, or where the default plot
    is no map export takes: an MMT result opens on its grain table)."""
    import h5py

    from smm_daq.storage.h5file import read_whole, text

    if saved is not None:
        return None

    def read(f: h5py.File) -> tuple[str, str]:
        g = f[entry]
        plot = text(g.attrs.get("default", ""))
        node = g.get(plot) if plot else None
        return plot, text(node.attrs.get("signal", "")) if isinstance(node, h5py.Group) else ""

    plot, signal = read_whole(path, read)
    name = f"{plot}/{signal}"
    if not signal or name == "data/Bz":
        return None
    return name if _exported(path, entry, name, m, saved) else None


def _exported(path: str, entry: str, dataset: str, m: MapData, saved: SavedResult | None
              ) -> bool:
    try:
        _chosen(path, entry, dataset, m, saved, held=lambda: "")
    except InputError:
        return False
    return True


def _chosen(path: str, entry: str, dataset: str | None, m: MapData, saved: SavedResult | None,
            *, held: Callable[[], str] | None = None
            ) -> tuple[np.ndarray, str, float, str, MapData]:
    """The map --dataset names (None: Bz) as `_dataset` gives it, for an MMT result
    (`saved`) from the result as read (`_result_map`). A refusal lists what the entry holds
    (`_maps_held`), or says `held()` instead (the listing, trying each name, lists nothing)."""
    if dataset in (None, "Bz", "data/Bz"):
        what = "residual_" if saved is not None else _model_prefix(path, entry)
        return m.bz, f"{what}Bz_nT", 1e9, f"{what.replace('_', ' ')}Bz (nT)", m
    found = _result_map(saved, dataset) if saved is not None else None
    if found is not None:
        return found
    if saved is not None and dataset.split("/")[0] == "grains":
        listing = held or (lambda: _maps_held(path, entry, m, saved))
        raise InputError(f"--dataset is {dataset!r}, the per-grain table, not a map; expected "
                         f"`{command_line(['smm-daq', 'mmt', 'export', path, '--entry', entry])} "
                         "--csv OUT.csv` for the "
                         f"table, or a map the entry holds: {listing()}",
                         source=f"{path}, entry '{entry}'")
    return _dataset(path, entry, dataset, m,
                    held or (lambda: _maps_held(path, entry, m, saved)))


def _model_prefix(path: str, entry: str) -> str:
    """"model_" where the entry's data/Bz is the field of a model fitted to a map (a χ or
    magnetization entry): its CSV column and label must not read as a measured Bz; else ""."""
    import h5py

    from smm_daq.analysis.subtract_inputs import MODEL_KINDS
    from smm_daq.storage.h5file import read_whole, text

    def read(f: h5py.File) -> str:
        return text(f[entry].attrs.get("kind", ""))

    return "model_" if read_whole(path, read) in MODEL_KINDS else ""


def _dataset(path: str, entry: str, dataset: str, m: MapData, maps_held: Callable[[], str]
             ) -> tuple[np.ndarray, str, float, str, MapData]:
    """A map under the entry with its CSV column name, factor and label, from its units, and
    the map whose grid it lies on: the entry's, or for a joint MMT result's other scan
    (scans/SCAN/...) whose grid the result does not store, the grid of entry SCAN, refused
    where that entry is gone or of another shape. A refusal names the maps `maps_held()`."""
    import h5py

    from smm_daq.storage.h5file import read_whole, text
    from smm_daq.storage.nexus import read_map
    from smm_daq.storage.units import join_units, split_units
    from smm_daq.storage.virtual import require_sources

    where = f"{path}, entry '{entry}'"

    def read(f: h5py.File) -> tuple[str, tuple[int, ...], str | None, str]:
        named = dataset
        if named.startswith("/"):  # HDF5 would read it from the file's root, not the entry
            raise InputError(f"--dataset is {named!r}, a path from the file's root; expected "
                             f"a map the entry holds: {maps_held()} (paths inside the entry)",
                             source=where)
        if named not in f[entry] and named in _RENAMED and _RENAMED[named] in f[entry]:
            named = _RENAMED[named]
        if not named or named not in f[entry]:
            raise InputError(f"--dataset is {named!r}, which the entry does not hold; "
                             f"expected a map the entry holds: {maps_held()}", source=where)
        node = f[entry][named]
        if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "iuf":
            raise InputError(f"'{named}' is not a numeric dataset; expected a map the entry "
                             f"holds: {maps_held()}", source=where)
        what = _not_a_map(named)
        if what is not None:
            raise InputError(f"'{named}' is {what}, not a map of the entry's grid; expected "
                             f"a map the entry holds: {maps_held()}", source=where)
        shape = node.shape  # read once the map is known to be one (a listing tries them all)
        units = text(node.attrs["units"]) if "units" in node.attrs else None
        base = named.rsplit("/", 1)[-1]
        if base == "errors" and "signal" in node.parent.attrs:  # an NXdata's SD
            base = f"{text(node.parent.attrs['signal'])}_sd"
        return named, shape, units, base

    dataset, shape, units, base = read_whole(path, read)
    parts = dataset.split("/")
    if len(parts) == 3 and parts[0] == "scans" and parts[1] in m.sources[1:]:
        # a joint inversion's other scan whose grid the result does not store (`_result_map`
        # takes those it does): on its entry's grid, never the first scan's
        try:
            scan: MapData | None = read_map(path, parts[1])
        except InputError:
            scan = None
        if scan is None or scan.shape != shape:
            why = "gone or unreadable" if scan is None else f"of shape {scan.shape}"
            raise InputError(
                f"'{dataset}' lies on the grid of scan '{parts[1]}', which the result does "
                "not record (written before smm-daq stored each scan's grid), and entry "
                f"'{parts[1]}' of the file no longer gives it ({why}); expected a map on a "
                f"grid known: {maps_held()}; or entry '{parts[1]}' back in the file",
                source=where)
        m = scan
    if shape != m.shape:
        raise InputError(f"dataset '{dataset}' has shape {shape}, not the shape of its grid "
                         f"{m.shape}; expected a map the entry holds: {maps_held()}",
                         source=where)

    def read_values(f: h5py.File) -> np.ndarray:
        require_sources(f[entry][dataset], where)
        return np.asarray(f[entry][dataset][()], dtype=float)

    values = read_whole(path, read_values)
    stem = base
    if units is None:  # files of earlier versions: the unit in the name
        stem, units = split_units(base)
    if units in _FORMATS:
        suffix, factor, label = _FORMATS[units]
        return values, f"{stem}_{suffix}", factor, label(stem), m
    if not units:  # a count or a flag: no unit to say
        return values, base, 1.0, base, m
    # any other unit (a reading's time in s, the lock-in's X in V) is said as the file says
    # it, in the column's name as in the picture's label: a bare "time" column reads as nothing
    return values, join_units(stem, units) or f"{stem} ({units})", 1.0, f"{stem} ({units})", m


def _png_named(option: str, text: str | None, overwrite: bool) -> Path | None:
    """An output PNG (`output_file`), its name ending in .png."""
    if text is None:
        return None
    path = output_file(option, text, overwrite=overwrite)
    if path.suffix.lower() != ".png":
        raise InputError(f"{option} is {path_shown(text)}; expected a file name ending in .png")
    return path


def _saved_result(path: str, entry: str) -> SavedResult | None:
    """The entry read as an MMT result (`read_result_entry`, so that a damaged one is refused
    with the message every command gives) where it is of kind 'mmt'; else None."""
    import h5py

    from smm_daq.analysis.mmt.result_read import read_result_entry
    from smm_daq.storage.checks import corrupt_guard
    from smm_daq.storage.h5file import read_whole, text
    from smm_daq.storage.staging import resolves

    def read(f: h5py.File) -> str:
        with corrupt_guard(path):
            g = f.get(entry) if resolves(f, entry) else None
            return text(g.attrs.get("kind", "")) if g is not None else ""

    kind = read_whole(path, read)
    return read_result_entry(path, entry) if kind == "mmt" else None


def _result_map(saved: SavedResult, dataset: str
                ) -> tuple[np.ndarray, str, float, str, MapData] | None:
    """A map of the MMT result as read (`_dataset`'s tuple): its fitted Bz (fitted/Bz), or a
    scan's fitted_Bz, residual_Bz or mask (scans/SCAN/...) on the scan's grid and named after
    the scan (a mask template's is that scan's mask); None for another dataset."""
    if dataset == "fitted/Bz":
        return saved.fitted.bz, "fitted_Bz_nT", 1 / NT, "fitted Bz (nT)", saved.fitted
    parts = dataset.split("/")
    fits = {fit.name: fit for fit in saved.scan_fits}
    if len(parts) != 3 or parts[0] != "scans" or parts[1] not in fits:
        return None
    fit, what = fits[parts[1]], parts[2]
    grid = fit.fitted.with_bz(fit.fitted.bz, name=fit.name)
    if what in ("fitted_Bz", "residual_Bz"):
        bz = fit.fitted.bz if what == "fitted_Bz" else fit.residual.bz
        return bz, f"{what}_nT", 1 / NT, f"{what} (nT)", grid
    if what == "mask" and parts[1] in saved.masks:
        return saved.masks[parts[1]].astype(float), "mask", 1.0, "mask", grid
    return None


def _export(args: argparse.Namespace) -> int:
    templates = args.mask_template or []
    if not (args.csv or args.png or templates):
        raise InputError("nothing to export; expected --csv PATH, --png PATH and/or "
                         "--mask-template PATH")
    if len(args.entry) > 1 or len(templates) > 1:
        return _export_templates(args)
    export_entry(args.file, args.entry[0], dataset=args.dataset, csv=args.csv, png=args.png,
                 template=templates[0] if templates else None, overwrite=args.overwrite)
    return 0


def export_entry(file: str, entry: str, *, dataset: str | None = None, csv: str | None = None,
                 png: str | None = None, template: str | None = None, overwrite: bool = False,
                 say: Callable[[str], None] = print) -> None:
    """`smm-daq export` of one entry's map (the window's Export… too): the CSV, the picture
    and/or the mask template named, every output checked before the first is written; `say`
    tells what was written, a line each."""
    from smm_daq.analysis.export import write_csv, write_png
    from smm_daq.storage.nexus import read_map

    saved = _saved_result(file, entry)
    m = saved.residual if saved is not None else read_map(file, entry)
    dataset = dataset if dataset is not None else _default_map(file, entry, m, saved)
    values, column, factor, label, m = _chosen(file, entry, dataset, m, saved)
    distinct_outputs(("--csv", csv), ("--png", png), ("--mask-template", template))
    csv_path = output_file("--csv", csv, overwrite=overwrite) if csv else None
    png_path = _png_named("--png", png, overwrite)
    template_path = _png_named("--mask-template", template, overwrite)
    if csv_path is not None:
        say(f"wrote {write_csv(m, csv_path, values=values, column=column, factor=factor)}")
    if png_path is not None:
        # the entry's title describes its data/Bz (a χ entry's: "... (data/Bz: its model)");
        # the entry's name before it, as two subtractions of the same scans share their title
        title = (_named(entry, m.title) if dataset in (None, "Bz", "data/Bz")
                 else f"{entry}: {dataset}")
        written = write_png(m, png_path, values=values, label=label, factor=factor,
                            title=title)
        say(f"wrote {written}")
    if template_path is not None:
        _write_template(m, values, template_path, say)


def _named(entry: str, title: str) -> str:
    """A picture's title: the entry's name, then its title where it has one of its own."""
    return f"{entry}: {title}" if title and title != entry else entry


def _export_templates(args: argparse.Namespace) -> int:
    """One map image to paint a mask on per --entry, in order (the scans of a joint inversion,
    as `mmt invert` takes them, and their masks in the same order). Every entry is read as
    `mmt invert` reads it (a measured map: a result's residual or a model's Bz is refused, as
    the inversion the images are painted for would refuse it) and every file name checked
    before the first is written."""
    from smm_daq.analysis.subtract_inputs import read_source

    entries, templates = list(args.entry), list(args.mask_template or [])
    others = [o for o, given in (("--csv", args.csv), ("--png", args.png),
                                 ("--dataset", args.dataset)) if given]
    if others:
        raise InputError(f"{' and '.join(others)} with {len(entries)} --entry and "
                         f"{len(templates)} --mask-template; expected one --entry for "
                         f"{' and '.join(others)} (several only for a mask image of each)")
    if len(templates) != len(entries):
        raise InputError(f"{len(templates)} --mask-template for --entry {', '.join(entries)}; "
                         "expected one image per --entry, in its order")
    twice = sorted({e for e in entries if entries.count(e) > 1})
    if twice:
        raise InputError(f"--entry names {', '.join(twice)} more than once; expected each "
                         "scan once, one image each")
    distinct_outputs(*((f"--mask-template of --entry {e}", t)
                       for e, t in zip(entries, templates, strict=True)))
    paths = [path for t in templates
             if (path := _png_named("--mask-template", t, args.overwrite)) is not None]
    maps = [read_source(args.file, entry) for entry in entries]
    for m, path in zip(maps, paths, strict=True):
        _write_template(m, m.bz, path)
    print(f"the masks of mmt invert {' '.join(f'--entry {e}' for e in entries)}, once painted: "
          + " ".join(f"--mask {path}" for path in paths))
    return 0


def _write_template(m: MapData, values: np.ndarray, path: Path,
                    say: Callable[[str], None] = print) -> None:
    from smm_daq.analysis.mask_template import extent_size, image_size, write_mask_template

    written = write_mask_template(m, path, values=values)
    ny, nx = m.shape
    w, h = image_size(m)
    if (w, h) != (nx, ny):
        drawn = f"its {nx} × {ny} sensors drawn in pixels of equal size in µm: x and y steps differ"
    elif extent_size(m) != (nx, ny):
        drawn = ("one a sensor, stretched: x and y steps too unequal for an image of the scan's "
                 "extent in µm")
    else:
        drawn = "one a sensor"
    say(f"wrote {written}: the map of '{m.name}' to paint a mask on, {w} × {h} pixels "
          f"({drawn}, the top row the highest y); paint the bad pixels black, save, and give "
          "it to mmt invert --mask")


# -- parsers ----------------------------------------------------------------------------------


def _add_layer_options(p: argparse.ArgumentParser, *, series: bool = False) -> None:
    p.add_argument("--thickness-um", type=float, required=True, help="layer thickness, µm")
    p.add_argument("--noise-nT", type=float,
                   help="the map's noise σ, nT (default: by GCV)" + (
                       "; with several --entry, one induced map's: the combination's is "
                       "worked out from the scans they share" if series else ""))
    p.add_argument("--criterion", choices=("discrepancy", "gcv"),
                   help="how λ is chosen (default: discrepancy with --noise-nT, else gcv)")
    p.add_argument("--correlation-length-um", type=float,
                   help="ℓ of the penalty ‖M‖² + ℓ²‖∇M‖², µm (default: the sensor height)")
    p.add_argument("--support-polygon", action="append", default=[], metavar="X,Y;X,Y;...",
                   help="where the layer may be magnetized, µm (default: the whole map); "
                        "give the sample's outline under a vertical field, where a χ spread "
                        "over the whole map makes almost no field and the mean χ is otherwise "
                        "poorly determined")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands."""
    p = sub.add_parser("subtract", help="in-field minus remanent (registered) into a new entry")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.add_argument("--in-field", required=True, type=entry_to_read,
                   help="the scan taken in field")
    p.add_argument("--remanent", required=True, type=entry_to_read,
                   help="the zero-field scan of the same sample (one taken in a field: "
                        "the map is the response to the difference of the two fields)")
    p.add_argument("--name", required=True, type=entry_name, help="entry to write")
    p.add_argument("--no-register", action="store_true", help="subtract as the scans lie")
    p.add_argument("--rotation", action="store_true", help="also fit a small rotation")
    p.add_argument("--apply-insignificant-shift", action="store_true",
                   help=INSIGNIFICANT_SHIFT_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an entry of that name")
    p.set_defaults(func=_naming_the_file(_subtract))

    p = sub.add_parser("background", help="remove an offset, a plane or the field's leakage")
    _add_io(p)
    p.add_argument("--model", choices=("offset", "plane", "field"), default="offset",
                   help="field: the applied field's own Bz (from the background pixels if "
                   "given, else from the entry's field vector)")
    _add_mask(p, "at least one, except with --model field")
    p.set_defaults(func=_naming_the_file(_background))

    p = sub.add_parser("level", help="remove per-line drift, fitted on background pixels")
    _add_io(p)
    p.add_argument("--order", type=int, choices=(0, 1), default=0,
                   help="0: an offset per line; 1: an offset and a slope")
    _add_mask(p)
    p.set_defaults(func=_naming_the_file(_level))

    p = sub.add_parser("noise", help="print the noise floor of an entry")
    _add_io(p, new_entry=False)
    p.add_argument("--repeat", type=entry_to_read,
                   help="a repeated scan of the same sample: use the difference")
    _add_mask(p, "at least one, except with --repeat (then they limit the pixels used)")
    p.set_defaults(func=_naming_the_file(_noise))

    p = sub.add_parser("susceptibility", help="χ map of a thin layer from an induced map",
                       description="χ map of a thin layer from an induced map, or from "
                       "several taken at fields along one axis (--entry repeated): χ is then "
                       "the slope of their induced field against the applied one, fitted "
                       "through zero over them all.")
    _add_io(p, entries=True)
    _add_layer_options(p, series=True)
    p.set_defaults(func=_naming_the_file(_susceptibility))

    p = sub.add_parser("magnetization",
                       help="magnetization map of a thin layer, remanence of known direction")
    _add_io(p)
    p.add_argument("--direction", required=True, metavar="X,Y,Z",
                   help="direction of the remanence (e.g. of the IRM), sample frame")
    _add_layer_options(p)
    p.set_defaults(func=_naming_the_file(_magnetization))

    p = sub.add_parser("crop", help="cut an entry down to a rectangle")
    _add_io(p)
    p.add_argument("--x-um", required=True, metavar="X0,X1", help="x range, µm")
    p.add_argument("--y-um", required=True, metavar="Y0,Y1", help="y range, µm")
    p.set_defaults(func=_naming_the_file(_crop))

    p = sub.add_parser("export", help="an entry to CSV, a PNG picture and/or an image to "
                                      "paint a mask of bad pixels on")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.add_argument("--entry", required=True, type=entry_to_read, action="append",
                   help="entry to read; repeated, with one --mask-template each: the map image "
                        "of each scan of a joint inversion, in mmt invert's order")
    p.add_argument("--dataset", type=dataset_to_read,
                   help="a map under the entry, e.g. Bz, chi/chi, chi/errors or "
                        "magnetization/M (default: the map the entry opens on, its NeXus "
                        "default plot: chi/chi for a susceptibility entry, magnetization/M for "
                        "a magnetization entry, else Bz)")
    p.add_argument("--csv", help="CSV file to write")
    p.add_argument("--png", help="PNG file to write (a figure: axes, labels, colour bar)")
    p.add_argument("--mask-template", metavar="OUT.png", action="append",
                   help="PNG of the map alone, one pixel a sensor (square pixels in µm where x "
                        "and y steps differ, unless very unequal), in light tones (grey: not "
                        "measured): paint the bad pixels black and give it to mmt invert --mask "
                        "(one per --entry)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing --csv/--png/--mask-template files")
    p.set_defaults(func=_naming_the_file(_export))
