"""`smm-daq calibrate-coils`: fit the coil matrix and ambient field with the fluxgate."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from smm_daq import interrupts
from smm_daq.cli.args import output_file, outputs_apart, time_scale
from smm_daq.errors import InputError, RampStopped
from smm_daq.instruments.coil_calibration import calibrate_coils, write_calibration
from smm_daq.instruments.profile import load_profile


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `calibrate-coils` sub-command."""
    p = sub.add_parser(
        "calibrate-coils",
        help="fit the coil calibration and ambient field with the fluxgate, null the field",
        description=(
            "Step each coil's current, fit the 3 × 3 coil matrix (T/A) and the ambient field "
            "to the fluxgate's readings at the sample, null the field, and store the result "
            "where the profile's rig.calibration_file says (or --out). The coils end at "
            "their safe state. The stage is not moved: it is connected only to be stopped "
            "with the rest of the rig, never referenced (stage.reference_on_connect is for a "
            "scan's connect)."
        ),
    )
    p.add_argument("--profile", metavar="FILE", help="instrument profile (default: simulator)")
    p.add_argument(
        "--out", metavar="FILE", help="store the calibration here instead of the profile's file"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument(
        "--time-scale",
        type=float,
        metavar="S",
        help="simulated seconds per real second (simulated profiles; default 0 = no waiting)",
    )
    p.set_defaults(func=run, drives_rig=True)


def run(args: argparse.Namespace) -> int:
    # the rig's machinery only when it runs
    from smm_daq.instruments.rig import open_rig, safety_statement, stage_left_unreferenced

    profile = load_profile(args.profile)
    if profile.fluxgate is None:
        raise InputError(
            "the profile has no [fluxgate] section; coil calibration needs a fluxgate at the "
            "sample position",
            source=str(profile.path),
        )
    time_scale(args.time_scale, simulated=profile.simulated)
    out = profile.calibration_file
    outputs_apart((("--out", args.out), ("rig.calibration_file", None if args.out or out is None
                                          else str(out))),
                  (("--profile", str(profile.path)),))
    if args.out:
        out = output_file("--out", args.out, overwrite=args.overwrite)
    elif out is not None:  # the profile's own store: calibrations replace each other there
        out = output_file("rig.calibration_file", str(out), overwrite=True)

    # The fluxgate sits where the sample goes: nothing here needs the stage anywhere, so it is
    # never referenced (a reference move drives every axis, z included, to its switch).
    rig = open_rig(stage_left_unreferenced(profile), time_scale=args.time_scale)
    try:
        # Ctrl-C raises in this thread; a plug-in driver that swallows it, or whose supply
        # ramps on by itself, is still stopped at its ramp's next piece
        try:
            result = calibrate_coils(rig.coils, rig.fluxgate, rig.profile, rig.clock,
                                     safe_on_failure=False, stop=interrupts.interrupted)
        except RampStopped as exc:
            if not interrupts.interrupted():
                raise
            raise _swallowed(str(exc)) from exc
        if interrupts.interrupted():  # swallowed where no ramp was left to stop on it
            raise _swallowed("a driver swallowed the signal after the calibration's last "
                             "ramp; the calibration is not stored")
    finally:  # the coils end at their safe state either way (a failure's within the make-safe
        # path's deadline); said, as every command says it
        problems = rig.make_safe()
        rig.close()
        print(f"smm-daq: {safety_statement(profile, problems)}", file=sys.stderr)

    fit = result.fit
    print(f"coil calibration of {profile.name} ({fit.points} points)")
    print("calibration (µT/A, columns = coils x, y, z):")
    for row in fit.calibration / 1e-6:
        print("   " + "  ".join(f"{v:10.5f}" for v in row))
    print("ambient field (µT): " + ", ".join(f"{v:.4f}" for v in result.ambient / 1e-6))
    print(f"fit residual: {fit.residual / 1e-9:.3g} nT rms")
    print(
        f"nulled field: {result.null_residual / 1e-9:.3g} nT after {result.iterations} "
        f"iteration(s) (target {result.target / 1e-9:.3g} nT), at currents "
        + ", ".join(f"{i:.5f}" for i in np.asarray(result.null_currents))
        + " A"
    )
    if out is None:
        print("not stored: the profile names no rig.calibration_file; pass --out FILE to store")
    else:
        write_calibration(out, result)
        print(f"stored in {out}")
    if not result.reached:
        print(
            f"smm-daq: nulling stopped at {result.null_residual / 1e-9:.3g} nT, above the "
            f"target {result.target / 1e-9:.3g} nT",
            file=sys.stderr,
        )
        return 1
    return 0


def _swallowed(said: str) -> KeyboardInterrupt:
    """The `KeyboardInterrupt` of the signal received (Ctrl-C), which a driver swallowed (a
    plug-in's): the command ends as interrupted, as on any Ctrl-C, `said` noted."""
    interrupt = KeyboardInterrupt(interrupts.first_signal())
    interrupt.add_note(said)
    return interrupt
